package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// A process left in a test namespace's cgroup is killed at cleanup, and
// the cgroups go.
func TestRemoveCgroupTreeKillsWhatIsLeft(t *testing.T) {
	skipShort(t)
	root := "/sys/fs/cgroup/pids"
	if _, err := os.Stat(filepath.Join(root, "cgroup.procs")); err != nil {
		root = "/sys/fs/cgroup" // cgroup v2
	}
	dir := filepath.Join(root, "test-removecgrouptree-"+strconv.Itoa(os.Getpid()))
	child := filepath.Join(dir, "left")
	if err := os.MkdirAll(child, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeCgroupTree(dir) })
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	if err := os.WriteFile(filepath.Join(child, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		_ = cmd.Process.Kill()
		t.Fatal(err)
	}

	removeCgroupTree(dir)
	select {
	case err := <-exited:
		if err == nil {
			t.Error("the process left in the cgroup exited by itself; want it killed")
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("the process left in the cgroup still runs after the cleanup")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("cgroup %s is still there (%v)", dir, err)
	}
}

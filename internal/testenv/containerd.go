package testenv

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/mountinfo"
	"berth.dev/berth/runtime/containerd/crilog"
)

// Containerd is a private containerd daemon started by StartContainerd.
type Containerd struct {
	dir     string
	address string
	cmd     *exec.Cmd
	log     *SyncBuffer
	exited  chan struct{}
	waitErr error
	stop    sync.Once
}

// CNIBinDir is where the tests expect the CNI plugins (Debian's
// containernetworking-plugins).
const CNIBinDir = "/usr/lib/cni"

// CheckHost reports what the machine lacks to run integration tests:
// root, containerd, runc, the CNI plugins and busybox-static.
func CheckHost() error {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (tests run containers and network namespaces)")
	}
	for _, bin := range []string{"containerd", "containerd-shim-runc-v2", "runc"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin+" (apt-get install containerd runc)")
		}
	}
	for _, p := range []string{"bridge", "host-local", "loopback"} {
		if _, err := os.Stat(filepath.Join(CNIBinDir, p)); err != nil {
			missing = append(missing, filepath.Join(CNIBinDir, p)+" (apt-get install containernetworking-plugins)")
		}
	}
	if _, err := os.Stat(busyboxPath); err != nil {
		missing = append(missing, busyboxPath+" (apt-get install busybox-static)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("integration tests cannot run, missing: %s", strings.Join(missing, "; "))
	}
	return nil
}

// StartContainerd starts a containerd daemon whose root, state, socket,
// configuration and log all live under dir (created if needed; keep its
// path short, a unix socket path is limited to 107 bytes). It waits until
// the daemon serves requests. The CRI plugin is disabled. Call Stop when
// done.
func StartContainerd(dir string) (*Containerd, error) {
	if err := CheckHost(); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	c := &Containerd{
		dir:     dir,
		address: filepath.Join(dir, "containerd.sock"),
		log:     &SyncBuffer{},
		exited:  make(chan struct{}),
	}
	if len(c.address) > 100 {
		return nil, fmt.Errorf("containerd socket path %q is too long", c.address)
	}
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
]

[grpc]
  address = %q

[ttrpc]
  address = %q

[debug]
  level = "info"

[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.address, c.address+".ttrpc", filepath.Join(dir, "opt"))
	configPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		return nil, err
	}
	if err := c.start(); err != nil {
		return nil, err
	}
	return c, nil
}

// start runs the daemon on c's configuration and waits until it serves.
func (c *Containerd) start() error {
	c.exited = make(chan struct{})
	c.stop = sync.Once{}
	c.cmd = exec.Command("containerd", "--config", filepath.Join(c.dir, "config.toml"))
	c.cmd.Stdout = c.log
	c.cmd.Stderr = c.log
	// Own process group: a ^C to the test does not reach the daemon first,
	// so the cleanup can still talk to it.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		return fmt.Errorf("start containerd: %w", err)
	}
	exited := c.exited
	cmd := c.cmd
	go func() {
		c.waitErr = cmd.Wait()
		close(exited)
	}()
	if err := c.waitServing(30 * time.Second); err != nil {
		c.Stop()
		return fmt.Errorf("%w\ncontainerd log:\n%s", err, c.Log())
	}
	return nil
}

// Kill kills the daemon with SIGKILL, as a crash would: its shims and
// containers keep running.
func (c *Containerd) Kill() error {
	if err := c.cmd.Process.Kill(); err != nil {
		return err
	}
	<-c.exited
	return nil
}

// Restart starts the daemon again on the same root, state and socket
// after Kill.
func (c *Containerd) Restart() error {
	_ = os.Remove(c.address)
	return c.start()
}

// Reboot simulates a power loss and a boot: it kills the daemon, every
// shim it started and every process below them, removes what does not
// survive a reboot (the daemon's state directory, runc's state of the
// given containerd namespaces, the network namespaces pinned under
// netnsDir whose names start with one of the namespaces, and every mount
// below the given directories), and starts the daemon again.
func (c *Containerd) Reboot(namespaces []string, netnsDir string, mountDirs ...string) error {
	if err := c.Kill(); err != nil {
		return err
	}
	for _, pid := range c.shimTree() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, ns := range namespaces {
		_ = os.RemoveAll(filepath.Join("/run/containerd/runc", ns))
		ents, _ := os.ReadDir(netnsDir)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ns+"-") {
				p := filepath.Join(netnsDir, e.Name())
				_ = unix.Unmount(p, unix.MNT_DETACH)
				_ = os.Remove(p)
			}
		}
	}
	for _, d := range append(mountDirs, filepath.Join(c.dir, "state")) {
		for _, m := range mountinfo.Under(d) {
			_ = unix.Unmount(m, unix.MNT_DETACH)
		}
	}
	if err := os.RemoveAll(filepath.Join(c.dir, "state")); err != nil {
		return err
	}
	return c.Restart()
}

// shimTree returns the PIDs of the shims serving this daemon (started with
// its socket as -address) and of every process below them, shims first.
func (c *Containerd) shimTree() []int {
	parent := map[int]int{}
	var roots []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil {
			if i := bytes.LastIndexByte(stat, ')'); i > 0 {
				if f := strings.Fields(string(stat[i+1:])); len(f) > 1 {
					parent[pid], _ = strconv.Atoi(f[1])
				}
			}
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		args := strings.Split(string(cmdline), "\x00")
		if len(args) > 0 && strings.HasSuffix(args[0], "containerd-shim-runc-v2") && slices.Contains(args, c.address) {
			roots = append(roots, pid)
		}
	}
	out := slices.Clone(roots)
	for i := 0; i < len(out); i++ {
		for pid, pp := range parent {
			if pp == out[i] && !slices.Contains(out, pid) {
				out = append(out, pid)
			}
		}
	}
	return out
}

func (c *Containerd) waitServing(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-c.exited:
			return fmt.Errorf("containerd exited early: %v", c.waitErr)
		default:
		}
		if _, err := os.Stat(c.address); err == nil {
			cl, err := client.New(c.address)
			if err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				ok, _ := cl.IsServing(ctx)
				cancel()
				cl.Close()
				if ok {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containerd did not serve on %s within %s", c.address, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// NewContainerd starts a private containerd for one test (or benchmark)
// and stops it when the test ends. The daemon's log is printed when the test
// failed or runs with -v. A host that cannot run containerd fails the test.
func NewContainerd(tb testing.TB) *Containerd {
	tb.Helper()
	skipShort(tb)
	dir, err := os.MkdirTemp("", "berth-ctrd-")
	if err != nil {
		tb.Fatal(err)
	}
	c, err := StartContainerd(dir)
	if err != nil {
		os.RemoveAll(dir)
		tb.Fatalf("testenv: %v", err)
	}
	tb.Cleanup(func() {
		if err := c.Stop(); err != nil {
			tb.Errorf("testenv: stop containerd: %v", err)
		}
		if tb.Failed() || testing.Verbose() {
			tb.Logf("containerd log:\n%s", c.Log())
		}
		c.RemoveDir()
	})
	return c
}

// Main starts a private containerd for a whole test binary, stores it in
// *c, runs the tests and stops the daemon; it returns the exit code for
// os.Exit. The daemon's log is printed when a test failed or with -v. If the
// daemon cannot start, Main prints why and returns 1: the tests fail, they
// are not skipped.
//
// When the binary was started as berth's log daemon (runtimes in tests
// use the test binary as their log daemon), Main runs the daemon instead
// and returns its exit code.
//
// With -short (make test-unit) no daemon starts and *c stays nil: the
// tests that need it skip in Namespace, the others run.
func Main(m *testing.M, c **Containerd) int {
	if crilog.IsDriver() {
		return crilog.DriverMain()
	}
	flag.Parse()
	if testing.Short() {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "berth-ctrd-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		return 1
	}
	d, err := StartContainerd(dir)
	if err != nil {
		os.RemoveAll(dir)
		fmt.Fprintln(os.Stderr, "testenv:", err)
		return 1
	}
	*c = d
	code := m.Run()
	if err := d.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "testenv: stop containerd:", err)
		code = 1
	}
	if code != 0 || testing.Verbose() {
		fmt.Fprintf(os.Stderr, "containerd log:\n%s\n", d.Log())
	}
	d.RemoveDir()
	return code
}

// Address returns the daemon's gRPC socket path.
func (c *Containerd) Address() string { return c.address }

// Dir returns the directory holding the daemon's root, state and socket.
func (c *Containerd) Dir() string { return c.dir }

// Log returns what the daemon logged so far.
func (c *Containerd) Log() string { return c.log.String() }

// Client returns a new client of the daemon using namespace ns by default.
// The caller closes it.
func (c *Containerd) Client(ns string) (*client.Client, error) {
	return client.New(c.address, client.WithDefaultNamespace(ns))
}

// Stop kills and deletes any task left in the daemon (so no shim or
// container process outlives it), then stops the daemon by its PID:
// SIGTERM, and SIGKILL after ten seconds. It is safe to call more than once.
func (c *Containerd) Stop() error {
	var err error
	c.stop.Do(func() {
		select {
		case <-c.exited:
		default:
			c.killTasks()
		}
		if c.cmd.Process != nil {
			_ = c.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-c.exited:
			case <-time.After(10 * time.Second):
				_ = c.cmd.Process.Kill()
				<-c.exited
				err = errors.New("containerd did not stop on SIGTERM, killed")
			}
		}
	})
	return err
}

// killTasks removes every task of every namespace, best effort.
func (c *Containerd) killTasks() {
	cl, err := client.New(c.address)
	if err != nil {
		return
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	nss, err := cl.NamespaceService().List(ctx)
	if err != nil {
		return
	}
	for _, ns := range nss {
		nctx := namespaces.WithNamespace(ctx, ns)
		ctrs, err := cl.Containers(nctx)
		if err != nil {
			continue
		}
		for _, ctr := range ctrs {
			task, err := ctr.Task(nctx, nil)
			if err != nil {
				continue
			}
			_, _ = task.Delete(nctx, client.WithProcessKill)
		}
	}
}

// RemoveDir unmounts whatever is still mounted under the daemon's
// directory and removes it. Call it after Stop.
func (c *Containerd) RemoveDir() error {
	for _, m := range mountinfo.Under(c.dir) {
		_ = unix.Unmount(m, unix.MNT_DETACH)
	}
	return os.RemoveAll(c.dir)
}

// MountsUnder returns the mount points at or below dir, as the host's
// mount table shows them. Leak checks use it.
func MountsUnder(dir string) []string { return mountinfo.Under(dir) }

// SyncBuffer is a bytes.Buffer safe for concurrent writes and reads: the
// output of a process a test reads while it runs.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth.dev/berth/agent"
)

// sshGit is Debian's sshd on loopback, letting one key in, serving the
// host's repository pushed to a bare copy.
type sshGit struct {
	url        string // ssh:// URL of the bare repository
	bare       string
	key        string // client private key
	knownHosts string // known_hosts naming the server's key
	otherHosts string // known_hosts naming another key for the same address
}

func (h *host) serveSSH() *sshGit {
	t := h.t
	t.Helper()
	sshd := "/usr/sbin/sshd"
	if p, err := exec.LookPath("sshd"); err == nil {
		sshd = p
	}
	if _, err := os.Stat(sshd); err != nil {
		t.Fatalf("sshd is missing (apt-get install openssh-server): %v", err)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if u.Uid == "0" {
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	keygen := func(name string) (string, []string) {
		p := filepath.Join(dir, name)
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", p).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
		pub, err := os.ReadFile(p + ".pub")
		if err != nil {
			t.Fatal(err)
		}
		return p, strings.Fields(string(pub))
	}
	hostKey, hostPub := keygen("host_key")
	_, otherPub := keygen("other_host_key")
	s := &sshGit{bare: filepath.Join(dir, "repo.git")}
	var clientPub []string
	s.key, clientPub = keygen("client_key")
	authorized := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authorized, []byte(strings.Join(clientPub, " ")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	config := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
AuthorizedKeysFile %s
PidFile %s
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers %s
`, port, hostKey, authorized, filepath.Join(dir, "sshd.pid"), u.Username)), 0o600); err != nil {
		t.Fatal(err)
	}
	s.knownHosts, s.otherHosts = filepath.Join(dir, "known_hosts"), filepath.Join(dir, "other_known_hosts")
	for f, pub := range map[string][]string{s.knownHosts: hostPub, s.otherHosts: otherPub} {
		if err := os.WriteFile(f, []byte(fmt.Sprintf("[127.0.0.1]:%d %s %s\n", port, pub[0], pub[1])), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(sshd, "-D", "-e", "-f", config)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logs := &syncBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("sshd log:\n%s", logs.String())
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd did not listen on %s: %v\n%s", addr, err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.git("init", "-q", "--bare", "-b", "main", s.bare)
	s.url = fmt.Sprintf("ssh://%s@%s%s", u.Username, addr, s.bare)
	return s
}

func TestAgentSSHKnownHosts(t *testing.T) {
	h := newHost(t)
	srv := h.serveSSH()
	h.write("web.yaml", sleeper("web", "3600"))
	h.commit("v1")
	h.git("push", "-q", srv.bare, "main")
	c1 := h.head()

	ra := h.startAgent("--repo", srv.url, "--ssh-key", srv.key, "--ssh-known-hosts", srv.knownHosts, "--health-settle", "1s")
	ra.waitFor("v1 good over ssh", func(st *agent.Status) bool { return st.LastGood != nil && st.LastGood.Commit == c1 })
	ra.stop()

	// The server's key no longer matches known_hosts: a hard error, in the
	// status, and no pod changes although a new commit waits.
	h.write("web.yaml", sleeper("web", "3601"))
	h.commit("v2")
	h.git("push", "-q", srv.bare, "main")
	seen := h.mutations()
	ra = h.startAgent("--repo", srv.url, "--ssh-key", srv.key, "--ssh-known-hosts", srv.otherHosts)
	st := ra.waitFor("fetch refused", func(st *agent.Status) bool { return st.FetchError != nil })
	if !strings.Contains(st.FetchError.Reason, "key mismatch") && !strings.Contains(st.FetchError.Reason, "knownhosts") {
		t.Fatalf("fetch error %q does not say the host key is wrong", st.FetchError.Reason)
	}
	if st.Applied.Commit != c1 || !st.Offline {
		t.Fatalf("applied %s offline %v; want %s, offline", st.Applied.Commit, st.Offline, c1)
	}
	ra.stop()
	if ev := seen(); len(ev) != 0 {
		t.Fatalf("a host key mismatch caused runtime events %v", ev)
	}
}

package testenv

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
)

// SSHD is Debian's sshd serving on loopback for one test, with its own
// configuration, host key and authorized keys.
type SSHD struct {
	// Addr is 127.0.0.1:Port.
	Addr string
	Port int
	// User is the login the server allows: the user running the test.
	User string
	// HostKey is the server's private host key; its public half is at
	// HostKey+".pub".
	HostKey string
	// KnownHosts is a known_hosts file naming the server's host key.
	KnownHosts string
}

// SSHKey generates an ed25519 key pair in dir, protected by passphrase
// when it is not empty, and returns the private key's path (the public key
// is at path+".pub").
func SSHKey(tb testing.TB, dir, name, passphrase string) string {
	tb.Helper()
	p := filepath.Join(dir, name)
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-a", "1", "-N", passphrase, "-C", name, "-f", p).CombinedOutput(); err != nil {
		tb.Fatalf("testenv: ssh-keygen: %v\n%s", err, out)
	}
	return p
}

// WriteKnownHosts writes a known_hosts file at path naming the public key
// in pubFile for 127.0.0.1:port.
func WriteKnownHosts(tb testing.TB, path string, port int, pubFile string) {
	tb.Helper()
	pub, err := os.ReadFile(pubFile)
	if err != nil {
		tb.Fatal(err)
	}
	f := strings.Fields(string(pub))
	if len(f) < 2 {
		tb.Fatalf("testenv: %s is not a public key", pubFile)
	}
	if err := os.WriteFile(path, []byte(fmt.Sprintf("[127.0.0.1]:%d %s %s\n", port, f[0], f[1])), 0o600); err != nil {
		tb.Fatal(err)
	}
}

// StartSSHD starts sshd on a free loopback port, accepting the public keys
// in the given files for the current user, and stops it (by its process
// group) when the test ends; its log is printed when the test failed. A
// missing sshd fails the test.
func StartSSHD(tb testing.TB, authorizedPubFiles ...string) *SSHD {
	tb.Helper()
	sshd, err := exec.LookPath("sshd")
	if err != nil {
		sshd = "/usr/sbin/sshd"
	}
	if _, err := os.Stat(sshd); err != nil {
		tb.Fatalf("testenv: sshd is missing (apt-get install openssh-server): %v", err)
	}
	u, err := user.Current()
	if err != nil {
		tb.Fatal(err)
	}
	if u.Uid == "0" {
		// sshd insists on its privilege separation directory when run as root.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	dir := tb.TempDir()
	s := &SSHD{User: u.Username, HostKey: SSHKey(tb, dir, "host_key", "")}
	var auth []byte
	for _, f := range authorizedPubFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		auth = append(auth, b...)
	}
	authorized := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authorized, auth, 0o600); err != nil {
		tb.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s.Port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	s.Addr = fmt.Sprintf("127.0.0.1:%d", s.Port)
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
LogLevel VERBOSE
`, s.Port, s.HostKey, authorized, filepath.Join(dir, "sshd.pid"), s.User)), 0o600); err != nil {
		tb.Fatal(err)
	}
	s.KnownHosts = filepath.Join(dir, "known_hosts")
	WriteKnownHosts(tb, s.KnownHosts, s.Port, s.HostKey+".pub")

	cmd := exec.Command(sshd, "-D", "-e", "-f", config)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logs := &SyncBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		tb.Fatalf("testenv: start sshd: %v", err)
	}
	pid := cmd.Process.Pid
	tb.Cleanup(func() {
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		_ = cmd.Wait()
		if tb.Failed() {
			tb.Logf("sshd log:\n%s", logs.String())
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", s.Addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return s
		}
		if time.Now().After(deadline) {
			tb.Fatalf("testenv: sshd did not listen on %s: %v\n%s", s.Addr, err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

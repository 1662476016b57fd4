package source

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"berth.dev/berth/internal/testenv"
)

// sshServer is a private sshd on loopback that lets one key in.
type sshServer struct {
	port       int
	user       string
	knownHosts string // known_hosts with the server's key
	key        string // client private key, no passphrase
	keyPass    string // client private key protected by sshPassphrase
}

const sshPassphrase = "pass-phrase-42"

// startSSHServer runs Debian's sshd with its own configuration and keys.
// Without sshd the test is skipped, unless BERTH_TEST_SSH=1 asks for it.
func startSSHServer(t *testing.T) *sshServer {
	t.Helper()
	sshd, err := exec.LookPath("sshd")
	if err != nil {
		sshd = "/usr/sbin/sshd"
	}
	if _, err := os.Stat(sshd); err != nil {
		if os.Getenv("BERTH_TEST_SSH") == "1" {
			t.Fatalf("BERTH_TEST_SSH=1 but sshd is missing (apt-get install openssh-server)")
		}
		t.Skip("sshd not installed; set BERTH_TEST_SSH=1 to require this test")
	}
	dir := t.TempDir()
	key := testenv.SSHKey(t, dir, "client_key", "")
	keyPass := testenv.SSHKey(t, dir, "client_key_pass", sshPassphrase)
	srv := testenv.StartSSHD(t, key+".pub", keyPass+".pub")
	return &sshServer{port: srv.Port, user: srv.User, knownHosts: srv.KnownHosts, key: key, keyPass: keyPass}
}

func TestSSH(t *testing.T) {
	srv := startSSHServer(t)
	r := newTestRepo(t)
	first := r.commit("first", map[string]string{"a.yaml": "a\n"})
	r.push()
	url := fmt.Sprintf("ssh://%s@127.0.0.1:%d%s", srv.user, srv.port, r.bare)

	t.Run("key and known hosts", func(t *testing.T) {
		s := mustOpen(t, Options{URL: url, CacheDir: t.TempDir(),
			Auth: Auth{SSHKeyFile: srv.key, SSHKnownHostsFile: srv.knownHosts}})
		rev, _ := mustFetch(t, s)
		if rev.Commit != first || rev.Ref != "refs/heads/main" {
			t.Fatalf("got %s %s", rev.Commit, rev.Ref)
		}
		if strings.Contains(rev.URL, srv.user+"@") {
			t.Errorf("URL shows the user: %s", rev.URL)
		}
		second := r.commit("second", map[string]string{"a.yaml": "b\n"})
		r.push()
		if rev, changed := mustFetch(t, s); !changed || rev.Commit != second {
			t.Fatalf("after a push: changed=%v commit=%s", changed, rev.Commit)
		}
	})
	t.Run("encrypted key", func(t *testing.T) {
		s := mustOpen(t, Options{URL: url,
			Auth: Auth{SSHKeyFile: srv.keyPass, SSHKeyPassphrase: sshPassphrase, SSHKnownHostsFile: srv.knownHosts}})
		mustFetch(t, s)
	})
	t.Run("wrong passphrase", func(t *testing.T) {
		_, err := Open(Options{URL: url,
			Auth: Auth{SSHKeyFile: srv.keyPass, SSHKeyPassphrase: "wrong-" + sshPassphrase, SSHKnownHostsFile: srv.knownHosts}})
		if err == nil {
			t.Fatal("open succeeded")
		}
		t.Logf("error: %v", err)
		if strings.Contains(err.Error(), sshPassphrase) {
			t.Errorf("error shows the passphrase: %v", err)
		}
	})
	t.Run("unknown host key", func(t *testing.T) {
		other := filepath.Join(t.TempDir(), "known_hosts")
		pub, err := os.ReadFile(srv.key + ".pub") // a key, but not the host's
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(string(pub))
		line := fmt.Sprintf("[127.0.0.1]:%d %s %s\n", srv.port, f[0], f[1])
		if err := os.WriteFile(other, []byte(line), 0o600); err != nil {
			t.Fatal(err)
		}
		s := mustOpen(t, Options{URL: url, Auth: Auth{SSHKeyFile: srv.key, SSHKnownHostsFile: other}})
		err = fetchErr(t, s)
		t.Logf("error: %v", err)
		if !strings.Contains(err.Error(), "key") {
			t.Errorf("error does not mention the host key: %v", err)
		}
	})
	t.Run("key not authorized", func(t *testing.T) {
		dir := t.TempDir()
		stranger := filepath.Join(dir, "k")
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", stranger).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
		s := mustOpen(t, Options{URL: url, Auth: Auth{SSHKeyFile: stranger, SSHKnownHostsFile: srv.knownHosts}})
		err := fetchErr(t, s)
		t.Logf("error: %v", err)
		if !errors.Is(err, ErrAuth) {
			t.Errorf("error %v is not ErrAuth", err)
		}
	})
}

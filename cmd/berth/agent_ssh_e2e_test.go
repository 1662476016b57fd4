package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"berth.dev/berth/agent"
	"berth.dev/berth/internal/testenv"
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
	dir := t.TempDir()
	s := &sshGit{bare: filepath.Join(dir, "repo.git"), key: testenv.SSHKey(t, dir, "client_key", "")}
	srv := testenv.StartSSHD(t, s.key+".pub")
	s.knownHosts = srv.KnownHosts
	s.otherHosts = filepath.Join(dir, "other_known_hosts")
	testenv.WriteKnownHosts(t, s.otherHosts, srv.Port, testenv.SSHKey(t, dir, "other_host_key", "")+".pub")
	h.git("init", "-q", "--bare", "-b", "main", s.bare)
	s.url = fmt.Sprintf("ssh://%s@%s%s", srv.User, srv.Addr, s.bare)
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

package testenv

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Registry starts Debian's docker-registry (package docker-registry) on a
// free loopback port, plain HTTP, no authentication, storing in a temporary
// directory, and stops it when the test ends. It returns "127.0.0.1:PORT".
// A missing docker-registry fails the test.
func Registry(tb testing.TB) string {
	tb.Helper()
	return startRegistry(tb, "", "")
}

// RegistryWithAuth is Registry with basic authentication from an htpasswd
// file holding one user.
func RegistryWithAuth(tb testing.TB, user, password string) string {
	tb.Helper()
	return startRegistry(tb, user, password)
}

func startRegistry(tb testing.TB, user, password string) string {
	tb.Helper()
	auth := ""
	if user != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
		if err != nil {
			tb.Fatal(err)
		}
		htpasswd := filepath.Join(tb.TempDir(), "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
			tb.Fatal(err)
		}
		auth = fmt.Sprintf("auth:\n  htpasswd:\n    realm: berth-test\n    path: %s\n", htpasswd)
	}
	return startRegistryConfig(tb, auth, user != "")
}

// startRegistryConfig starts docker-registry with auth (a YAML "auth:"
// section, or empty for none); protected says whether /v2/ answers 401.
func startRegistryConfig(tb testing.TB, auth string, protected bool) string {
	tb.Helper()
	skipShort(tb)
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		tb.Fatalf("testenv: docker-registry not found (apt-get install docker-registry): %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := tb.TempDir()
	config := fmt.Sprintf(`version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, filepath.Join(dir, "data"), addr)
	config += auth
	configPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		tb.Fatal(err)
	}
	log := &SyncBuffer{}
	cmd := exec.Command(bin, "serve", configPath)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("testenv: start docker-registry: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if tb.Failed() {
			tb.Logf("docker-registry log:\n%s", log.String())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || protected && resp.StatusCode == http.StatusUnauthorized {
				return addr
			}
		}
		select {
		case <-exited:
			tb.Fatalf("testenv: docker-registry exited:\n%s", log.String())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("testenv: docker-registry not serving on %s:\n%s", addr, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Package secretstest builds the sops command of a pinned SOPS release
// (SOPSVersion) and encrypts test fixtures with it, so tests read files
// exactly as users make them.
package secretstest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"filippo.io/age"
)

var (
	buildOnce sync.Once
	sopsPath  string
	buildErr  error
	buildOut  []byte
)

// SOPS returns the path of the sops command of SOPSVersion, built once
// (with go install, through the Go module proxy) and kept in the user's
// cache directory under that version: building it takes minutes. It fails the test if it cannot be
// built: tests that need it never skip.
func SOPS(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		dir := filepath.Join(cache, "berth-test", "sops-"+SOPSVersion+"-"+runtime.Version())
		sopsPath = filepath.Join(dir, "sops")
		if _, err := os.Stat(sopsPath); err == nil {
			return
		}
		tmp, err := os.MkdirTemp(filepath.Dir(dir), "build-")
		if err != nil {
			if buildErr = os.MkdirAll(filepath.Dir(dir), 0o755); buildErr != nil {
				return
			}
			if tmp, buildErr = os.MkdirTemp(filepath.Dir(dir), "build-"); buildErr != nil {
				return
			}
		}
		defer os.RemoveAll(tmp)
		// go install pkg@version builds the module at that version, with
		// its own go.mod, outside berth's module graph.
		cmd := exec.Command("go", "install", sopsModule+"/cmd/sops@"+SOPSVersion)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOBIN="+tmp, "GOFLAGS=")
		if buildOut, buildErr = cmd.CombinedOutput(); buildErr != nil {
			return
		}
		if buildErr = os.Rename(tmp, dir); buildErr != nil && fileExists(sopsPath) {
			buildErr = nil // another test process was first
		}
	})
	if buildErr != nil {
		t.Fatalf("build sops: %v\n%s", buildErr, buildOut)
	}
	return sopsPath
}

// sopsModule is the SOPS module. berth does not link it (its packages pull
// in every cloud key service); it decrypts with filippo.io/age and its own
// reading of the format, which the tests check against this command.
const sopsModule = "github.com/getsops/sops/v3"

// SOPSVersion is the version of the sops command the tests encrypt with:
// the SOPS release whose file format berth reads (the newest when this
// was written).
const SOPSVersion = "v3.13.3"

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Identity is an age identity made for a test.
type Identity struct {
	// File is the identity file (mode 0600), Recipient its public key.
	File, Recipient string
}

// NewIdentity makes an age identity in a file under t.TempDir().
func NewIdentity(t testing.TB) Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "age.key")
	if err := os.WriteFile(f, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return Identity{File: f, Recipient: id.Recipient().String()}
}

// Encrypt encrypts YAML plaintext to the age recipients with the sops
// command, passing extra flags (such as "--encrypted-regex",
// "^(data|stringData)$"), and returns the encrypted file.
func Encrypt(t testing.TB, plaintext string, recipients []string, extra ...string) []byte {
	t.Helper()
	dir := t.TempDir()
	in := filepath.Join(dir, "in.yaml")
	if err := os.WriteFile(in, []byte(plaintext), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--encrypt", "--age", strings.Join(recipients, ","), "--input-type", "yaml", "--output-type", "yaml"}, extra...)
	args = append(args, in)
	return run(t, dir, args...)
}

// Decrypt decrypts an encrypted YAML file with the sops command and the
// identity file, as a user would.
func Decrypt(t testing.TB, encrypted []byte, identityFile string) []byte {
	t.Helper()
	dir := t.TempDir()
	in := filepath.Join(dir, "in.yaml")
	if err := os.WriteFile(in, encrypted, 0o600); err != nil {
		t.Fatal(err)
	}
	return run(t, dir, "--decrypt", "--input-type", "yaml", "--output-type", "yaml", in, "SOPS_AGE_KEY_FILE="+identityFile)
}

// run runs sops with args; an argument NAME=VALUE at the end is set in its
// environment instead.
func run(t testing.TB, dir string, args ...string) []byte {
	t.Helper()
	env := []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH"), "XDG_CONFIG_HOME=" + dir}
	for len(args) > 0 && strings.Contains(args[len(args)-1], "=") && strings.HasPrefix(args[len(args)-1], "SOPS_") {
		env = append(env, args[len(args)-1])
		args = args[:len(args)-1]
	}
	cmd := exec.Command(SOPS(t), args...)
	cmd.Dir = dir
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sops %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

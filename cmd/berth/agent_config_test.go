package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestAgentConfigFile(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(cfg, []byte(`
repo: https://git.example/ops.git
ref: ">=1.2.0 <2.0.0"
interval: 30s
jitter: 0.2
allow-mass-delete: true
trusted-keys:
  - /etc/berth/a
  - /etc/berth/b
namespace: from-file
log-level: debug
`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BERTH_NAMESPACE", "from-env")
	c := &cli{stdout: io.Discard, stderr: io.Discard}
	o := &agentOptions{}
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	c.commonFlags(fs)
	agentFlags(fs, c, o)
	if err := applyEnv(fs); err != nil {
		t.Fatal(err)
	}
	if err := fs.Parse([]string{"--config", cfg, "--interval", "5s"}); err != nil {
		t.Fatal(err)
	}
	if err := applyConfigFile(fs, o.config); err != nil {
		t.Fatal(err)
	}
	got := map[string]any{
		"repo": c.repo, "ref": c.ref, "interval": o.interval, "jitter": o.jitter, "mass": c.safety.AllowMassDelete,
		"keys": []string(o.trustedKeys), "namespace": c.namespace, "log": c.logLevel,
	}
	want := map[string]any{
		"repo": "https://git.example/ops.git", "ref": ">=1.2.0 <2.0.0",
		"interval": 5 * time.Second, // the command line wins
		"jitter":   0.2, "mass": true, "keys": []string{"/etc/berth/a", "/etc/berth/b"},
		"namespace": "from-env", // the environment wins
		"log":       "debug",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}

	for _, bad := range []string{"nonsense: 1\n", "interval: soon\n", "config: other.yaml\n", "repo: [\n"} {
		if err := os.WriteFile(cfg, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		fs := flag.NewFlagSet("agent", flag.ContinueOnError)
		c.commonFlags(fs)
		agentFlags(fs, c, &agentOptions{})
		if err := applyConfigFile(fs, cfg); err == nil || !strings.Contains(err.Error(), cfg) {
			t.Errorf("config %q: error %v", bad, err)
		}
	}
}

package corpus

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestDirMissing runs a test needing a missing corpus in a child process:
// it is skipped naming the variable, and fails when the corpus is required.
func TestDirMissing(t *testing.T) {
	if os.Getenv("CORPUS_CHILD") == "1" {
		Dir(t, Corpus{Env: "BERTH_TEST_NO_CORPUS", Beside: "no/such/corpus"})
		t.Fatal("Dir returned for a missing corpus")
	}
	for _, tc := range []struct {
		required bool
		want     string
	}{
		{false, "--- SKIP"},
		{true, "--- FAIL"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestDirMissing$", "-test.v")
		cmd.Env = append(os.Environ(), "CORPUS_CHILD=1", "BERTH_TEST_NO_CORPUS=")
		if tc.required {
			cmd.Env = append(cmd.Env, RequiredEnv+"=required")
		} else {
			cmd.Env = append(cmd.Env, RequiredEnv+"=")
		}
		out, _ := cmd.CombinedOutput()
		if !strings.Contains(string(out), tc.want) || !strings.Contains(string(out), "set BERTH_TEST_NO_CORPUS to its directory") {
			t.Errorf("required=%v: want %s naming BERTH_TEST_NO_CORPUS, got:\n%s", tc.required, tc.want, out)
		}
	}
}

func TestDirFromEnv(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("BERTH_TEST_CORPUS", dir)
	if got := Dir(t, Corpus{Env: "BERTH_TEST_CORPUS", Beside: "no/such/corpus"}); got != dir {
		t.Errorf("Dir = %q, want %q", got, dir)
	}
}

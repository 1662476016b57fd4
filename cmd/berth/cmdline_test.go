package main

import (
	"os"
	"runtime/debug"
	"strings"
	"testing"
)

// TestOneShotGC: the one-shot commands collect less often, the agent and
// a GOGC the user set are left alone.
func TestOneShotGC(t *testing.T) {
	if v, set := os.LookupEnv("GOGC"); set {
		t.Cleanup(func() { os.Setenv("GOGC", v) })
	}
	os.Unsetenv("GOGC")
	orig := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(orig) })
	for cmd, want := range map[string]int{"apply": 400, "plan": 400, "vet": 400, "agent": 100, "status": 100} {
		debug.SetGCPercent(100)
		oneShotGC(cmd)
		if got := debug.SetGCPercent(100); got != want {
			t.Errorf("after oneShotGC(%q): GOGC %d, want %d", cmd, got, want)
		}
	}
	os.Setenv("GOGC", "50")
	defer os.Unsetenv("GOGC")
	debug.SetGCPercent(50)
	oneShotGC("apply")
	if got := debug.SetGCPercent(100); got != 50 {
		t.Errorf("with GOGC=50 set: GOGC %d after oneShotGC, want 50", got)
	}
}

// TestHelpGivesEachDefaultOnce: a flag's help line names its default at
// most once.
func TestHelpGivesEachDefaultOnce(t *testing.T) {
	for _, c := range commands() {
		var out, errOut strings.Builder
		run([]string{c.name, "--help"}, &out, &errOut)
		for _, line := range strings.Split(errOut.String(), "\n") {
			if strings.Count(line, "(default ") > 1 {
				t.Errorf("berth %s --help: %s", c.name, line)
			}
		}
	}
}

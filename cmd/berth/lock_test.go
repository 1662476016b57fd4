package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"berth.dev/berth/internal/statelock"
)

// TestApplyRefusesWhileAnAgentHoldsTheState: apply never works on a
// state directory an agent manages, and names the agent.
func TestApplyRefusesWhileAnAgentHoldsTheState(t *testing.T) {
	dir := t.TempDir()
	l, err := statelock.TryAcquire(dir, "agent")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	var out, errb bytes.Buffer
	code := run([]string{"apply", "--state-dir", dir, "--repo", t.TempDir()}, &out, &errb)
	want := fmt.Sprintf("managed by a running agent, pid %d (berth agent", os.Getpid())
	if code != exitError || !strings.Contains(errb.String(), want) {
		t.Errorf("apply while an agent holds the state: exit %d, %q; want it to say %q", code, errb.String(), want)
	}
}

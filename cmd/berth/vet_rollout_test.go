package main

import (
	"strings"
	"testing"
)

// TestVetRolloutPolicy checks that vet validates berth-rollout.yaml with
// positions, and that a valid policy is not read as a manifest.
func TestVetRolloutPolicy(t *testing.T) {
	valid := "waves:\n- {name: canary, selector: {matchLabels: {ring: canary}}, soak: 30m}\n- {name: rest, percent: 100}\nmaxFailures: 10%\n"
	dir := writeRepo(t, map[string]string{"web.yaml": strings.Replace(pod, "%s", "web", 1), "berth-rollout.yaml": valid})
	if code, out, errOut := vet(t, dir); code != 0 || !strings.Contains(out, "1 object, valid") {
		t.Fatalf("valid policy: exit %d\n%s%s", code, out, errOut)
	}

	dir = writeRepo(t, map[string]string{"web.yaml": strings.Replace(pod, "%s", "web", 1),
		"berth-rollout.yaml": "waves:\n- {name: canary, soak: 30 minutes, percent: 5}\n"})
	code, out, errOut := vet(t, dir)
	want := `./berth-rollout.yaml:2:24: waves[0].soak: must be a duration such as 30m or 2h, got "30 minutes"`
	if code != 1 || strings.TrimSpace(out) != want || !strings.Contains(errOut, "1 error") {
		t.Fatalf("invalid policy: exit %d\nstdout: %s\nstderr: %s\nwant: %s", code, out, errOut, want)
	}

	// A policy file in a subdirectory is a manifest like any other.
	dir = writeRepo(t, map[string]string{"apps/berth-rollout.yaml": valid})
	if code, _, _ := vet(t, dir); code != 1 {
		t.Fatalf("policy outside the root: exit %d, want 1", code)
	}

	// The same policy in CUE, beside a CUE package at the root: the
	// policy is no part of the package, and its problems have positions
	// in the .cue file, CUE's own as well as the policy's.
	webCUE := "package shop\n\nweb: {apiVersion: \"v1\", kind: \"Pod\", metadata: name: \"web\", spec: containers: [{name: \"web\", image: \"example.local/web:1\"}]}\n"
	cuePolicy := "_soak: \"30m\"\nwaves: [\n\t{name: \"canary\", selector: matchLabels: ring: \"canary\", soak: _soak},\n\t{name: \"rest\", percent: 100},\n]\nmaxFailures: \"10%\"\n"
	dir = writeRepo(t, map[string]string{"web.cue": webCUE, "berth-rollout.cue": cuePolicy})
	if code, out, errOut := vet(t, dir); code != 0 || !strings.Contains(out, "1 object, valid") {
		t.Fatalf("valid CUE policy: exit %d\n%s%s", code, out, errOut)
	}
	dir = writeRepo(t, map[string]string{"web.cue": webCUE,
		"berth-rollout.cue": strings.Replace(cuePolicy, "percent: 100", "percent: 120", 1) + "maxFailures: 1\n"})
	code, out, errOut = vet(t, dir)
	want = "./berth-rollout.cue:6:14: maxFailures: conflicting values \"10%\" and 1 (mismatched types string and int)"
	if code != 1 || strings.TrimSpace(out) != want {
		t.Fatalf("invalid CUE policy: exit %d\nstdout: %s\nstderr: %s\nwant: %s", code, out, errOut, want)
	}
	dir = writeRepo(t, map[string]string{"web.cue": webCUE, "berth-rollout.cue": strings.Replace(cuePolicy, "percent: 100", "percent: 120", 1)})
	code, out, _ = vet(t, dir)
	want = `./berth-rollout.cue:4:26: waves[1].percent: must be a number above 0 and at most 100, got "120"`
	if code != 1 || strings.TrimSpace(out) != want {
		t.Fatalf("invalid CUE policy: exit %d\nstdout: %s\nwant: %s", code, out, want)
	}
}

package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/agent"
	"berth.dev/berth/internal/record"
)

// TestStatusShowsTheAgent checks that `berth status` prints what a running
// agent reports ahead of the pod tables: revisions, modes, the last
// problem with its diagnostics, and bad revisions.
func TestStatusShowsTheAgent(t *testing.T) {
	rep := &statusReport{Agent: &agent.Status{
		Source:       "https://git.example/fleet.git",
		Pin:          "0123456789abcdef0123",
		Offline:      true,
		Fetched:      &record.Revision{Commit: "aaaaaaaaaaaaaaaa"},
		Applied:      &record.Revision{Commit: "bbbbbbbbbbbbbbbb"},
		LastGood:     &record.Revision{Commit: "bbbbbbbbbbbbbbbb"},
		LastError:    &agent.Problem{Kind: "validate", Commit: "aaaaaaaaaaaaaaaa", Reason: "revision is invalid", Problems: []string{"./web.yaml:4:9: Pod/default/My_Pod: metadata.name: must be a DNS-1123 subdomain"}},
		BadRevisions: []agent.BadRevision{{Commit: "cccccccccccccccc", Reason: "pods not ready within 5m0s"}},
	}}
	var b bytes.Buffer
	if err := writeStatus(&b, rep, time.Now()); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"agent: https://git.example/fleet.git",
		"fetched aaaaaaaaaaaa, applied bbbbbbbbbbbb, last good bbbbbbbbbbbb",
		"pinned to 0123456789ab, offline",
		"validate error at aaaaaaaaaaaa: revision is invalid",
		"    ./web.yaml:4:9: Pod/default/My_Pod: metadata.name: must be a DNS-1123 subdomain",
		"bad revision cccccccccccc: pods not ready within 5m0s",
		"NAMESPACE",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Index(out, "agent:") > strings.Index(out, "NAMESPACE") {
		t.Errorf("the agent block should come before the pods:\n%s", out)
	}
}

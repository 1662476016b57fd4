package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/agent"
	"berth.dev/berth/fleet/mqtt"
	"berth.dev/berth/fleet/rollout"
	"berth.dev/berth/internal/mosquitto"
)

// fleetPolicy is the rollout of the end-to-end test: the canary, then
// everyone after a short soak; the first failure halts.
const fleetPolicy = `waves:
- {name: canary, selector: {matchLabels: {ring: canary}}, soak: 4s}
- {name: rest, percent: 100}
maxFailures: 0
`

// TestFleetRolloutE2E runs three agents on real containerd (each with its
// own namespace, state directory, bridge and node name) against one Git
// server and a real mosquitto: the canary applies first and the others
// wait its soak; a commit the canary fails halts the rollout with no
// other device changed; the fix rolls out again; a device that was
// offline converges when it comes back; berth fleet status shows it all.
func TestFleetRolloutE2E(t *testing.T) {
	broker := mosquitto.Start(t, mosquitto.Options{})
	repo := newHost(t)
	srv := repo.serveGit()
	pw, user, _ := repo.credentials()
	repo.write("web.yaml", sleeper("web", "3600"))
	repo.commit("v1")
	c1 := repo.push(srv)

	type device struct {
		name string
		h    *host
		ra   *runningAgent
		args []string
	}
	devs := []*device{{name: "can-1"}, {name: "dev-1"}, {name: "dev-2"}}
	for i, d := range devs {
		d.h = repo
		if i > 0 {
			d.h = newHost(t)
		}
		d.args = []string{"--repo", srv.URL + "/repo.git", "--git-username-file", user, "--git-password-file", pw,
			"--interval", "1s", "--jitter", "0.01", "--crash-restarts", "1", "--health-settle", "1s", "--health-deadline", "30s",
			"--node-name", d.name, "--mqtt", broker.URL, "--fleet", "e2e"}
		if d.name == "can-1" {
			d.args = append(d.args, "--node-label", "ring=canary")
		}
		d.ra = d.h.startAgent(d.args...)
	}
	good := func(d *device, c string) *agent.Status {
		return d.ra.waitFor(d.name+" good on "+c[:7], func(st *agent.Status) bool { return st.LastGood != nil && st.LastGood.Commit == c })
	}
	for _, d := range devs {
		good(d, c1)
	}

	// v2 with the policy: the canary first, the others after its soak.
	repo.write("berth-rollout.yaml", fleetPolicy)
	repo.write("web.yaml", sleeper("web", "3601"))
	repo.commit("v2")
	c2 := repo.push(srv)
	held := func(d *device, c string, state rollout.State) *agent.Status {
		return d.ra.waitFor(d.name+" holds "+c[:7], func(st *agent.Status) bool {
			return st.Rollout != nil && st.Rollout.Commit == c && st.Rollout.State == state
		})
	}
	for _, d := range devs[1:] {
		st := held(d, c2, rollout.Wait)
		if st.Rollout.Wave != "rest" {
			t.Fatalf("%s is in wave %q, want rest", d.name, st.Rollout.Wave)
		}
	}
	canGood := good(devs[0], c2)
	for _, d := range devs[1:] {
		st, err := d.ra.client.Status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if rev, _ := podRevision(st, "web"); rev != c1 {
			t.Fatalf("%s runs %s when the canary became good, want %s", d.name, rev, c1)
		}
	}
	for _, d := range devs[1:] {
		st := good(d, c2)
		if soaked := st.Applied.Time.Sub(canGood.LastGood.Time); soaked < 4*time.Second {
			t.Errorf("%s applied %s after the canary became good, before its 4s soak", d.name, soaked)
		}
	}

	// v3 crashes on the canary: it rolls back, and the rollout halts.
	repo.write("web.yaml", strings.Replace(sleeper("web", "3600"), "trap 'exit 0' TERM; sleep 3600 & wait", "exit 7", 1))
	repo.commit("v3: crashes")
	c3 := repo.push(srv)
	devs[0].ra.waitFor("canary rolls v3 back", func(st *agent.Status) bool {
		return len(st.BadRevisions) == 1 && st.BadRevisions[0].Commit == c3
	})
	for _, d := range devs[1:] {
		st := held(d, c3, rollout.Halted)
		if rev, _ := podRevision(st, "web"); rev != c2 || st.Applied.Commit != c2 {
			t.Fatalf("%s runs %s (applied %s) in a halted rollout, want %s", d.name, rev, st.Applied.Commit, c2)
		}
		if !strings.Contains(st.Rollout.Reason, "can-1") {
			t.Errorf("%s: halt reason %q does not name the failed canary", d.name, st.Rollout.Reason)
		}
	}
	fleetStatus(t, broker, "e2e", "the canary failed and the rest halted", func(s *mqtt.Summary) bool {
		ok := len(s.Groups) == 2
		for _, g := range s.Groups {
			switch {
			case g.Revision == c3 && g.Wave == "canary":
				ok = ok && g.Failed == 1 && len(g.Failing) == 1 && g.Failing[0].Node == "can-1"
			case g.Revision == c3 && g.Wave == "rest":
				ok = ok && g.Halted && g.Pending == 2
			default:
				ok = false
			}
		}
		return ok
	})

	// dev-2 goes away; the fix rolls out to the others, then to dev-2
	// when it is back.
	devs[2].ra.stop()
	repo.write("web.yaml", sleeper("web", "3602"))
	repo.commit("v4: fix")
	c4 := repo.push(srv)
	good(devs[0], c4)
	good(devs[1], c4)
	fleetStatus(t, broker, "e2e", "dev-2 offline", func(s *mqtt.Summary) bool {
		var offline []string
		for _, g := range s.Groups {
			offline = append(offline, g.OfflineDevices...)
		}
		return len(offline) == 1 && offline[0] == "dev-2"
	})
	devs[2].ra = devs[2].h.startAgent(devs[2].args...)
	good(devs[2], c4)

	fleetStatus(t, broker, "e2e", "every device healthy on v4", func(s *mqtt.Summary) bool {
		return len(s.Groups) == 2 && s.Groups[0].Revision == c4 && s.Groups[0].Wave == "canary" && s.Groups[0].Healthy == 1 &&
			s.Groups[1].Revision == c4 && s.Groups[1].Wave == "rest" && s.Groups[1].Healthy == 2
	})
	var out, errOut bytes.Buffer
	if code := run([]string{"fleet", "status", "--mqtt", broker.URL, "--fleet", "e2e"}, &out, &errOut); code != 0 {
		t.Fatalf("fleet status: exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{c4[:12] + "  canary  1        1        0       0        0        done", c4[:12] + "  rest    2        2        0       0        0        done"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("fleet status:\n%s\nwant a row %q", out.String(), want)
		}
	}
}

// fleetStatus runs berth fleet status -o json until what it shows
// satisfies cond: devices publish after their own passes.
func fleetStatus(t *testing.T, broker *mosquitto.Broker, fleet, what string, cond func(*mqtt.Summary) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var out, errOut bytes.Buffer
		code := run([]string{"fleet", "status", "--mqtt", broker.URL, "--fleet", fleet, "-o", "json"}, &out, &errOut)
		if code != 0 {
			t.Fatalf("fleet status: exit %d: %s", code, errOut.String())
		}
		var s mqtt.Summary
		if err := json.Unmarshal(out.Bytes(), &s); err != nil {
			t.Fatal(err)
		}
		if cond(&s) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("fleet status does not show %s:\n%s", what, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

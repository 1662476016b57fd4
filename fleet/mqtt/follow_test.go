package mqtt

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"berth.dev/berth/fleet/rollout"
	"berth.dev/berth/internal/mosquitto"
)

// until waits for cond, checking it again each time the device reports
// a change on changed.
func until(t *testing.T, changed <-chan struct{}, what string, cond func() bool) {
	t.Helper()
	timeout := time.NewTimer(60 * time.Second)
	defer timeout.Stop()
	for !cond() {
		select {
		case <-changed:
		case <-timeout.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestFollowEarlierWaves runs a rollout's status through mosquitto: a
// device of the third wave follows the records of the first two waves
// and the failures of any wave, and not the devices of its own wave; the
// presence flags of the devices it follows; completeness; and a device
// whose wave started follows nothing. Records of a commit two rollouts
// back are cleared from the broker.
func TestFollowEarlierWaves(t *testing.T) {
	ctx := context.Background()
	b := mosquitto.Start(t, mosquitto.Options{})
	opts := Options{URL: b.URL, Fleet: "edge", ConnectTimeout: 5 * time.Second}
	dev := func(node string) *Device {
		d, err := Connect(ctx, opts, node, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(d.Close)
		return d
	}
	publish := func(d *Device, s DeviceStatus) {
		t.Helper()
		if err := d.Publish(s); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	canary := map[string]string{"ring": "canary"}
	can1, can2, early, rest2 := dev("can-1"), dev("can-2"), dev("early-1"), dev("rest-2")
	publish(can1, DeviceStatus{Labels: canary, Wave: "canary", Desired: "c2", LastGood: "c2", GoodSince: t0})
	publish(can2, DeviceStatus{Labels: canary, Wave: "canary", Desired: "c2", LastGood: "c1", Failed: []string{"c2"}})
	publish(early, DeviceStatus{Wave: "early", Desired: "c2", LastGood: "c1"})
	publish(rest2, DeviceStatus{Wave: "rest", Desired: "c2", LastGood: "c1"})

	changed := make(chan struct{}, 100)
	rest, err := Connect(ctx, opts, "rest-1", func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer rest.Close()
	earlier := []string{"canary", "early"}
	want := []rollout.Report{
		{Device: rollout.Device{Name: "can-1", Labels: canary}, Online: true, LastGood: "c2", GoodSince: t0},
		{Device: rollout.Device{Name: "can-2", Labels: canary}, Online: true, Failed: []string{"c2"}},
		{Device: rollout.Device{Name: "early-1"}, Online: true},
	}
	var got []rollout.Report
	until(t, changed, "the records of waves canary and early", func() bool {
		var complete bool
		got, complete = rest.Follow("c2", earlier)
		return complete && len(got) == len(want)
	})
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("reports (-want +got):\n%s", diff)
	}

	// A failure in the device's own wave reaches it; a device of its wave
	// that is fine does not.
	publish(rest2, DeviceStatus{Wave: "rest", Desired: "c2", LastGood: "c1", Failed: []string{"c2"}})
	until(t, changed, "rest-2's failure", func() bool {
		rs, _ := rest.Follow("c2", earlier)
		return len(rs) == 4 && rs[3].Name == "rest-2" && cmp.Equal(rs[3].Failed, []string{"c2"})
	})

	// A followed device that goes away counts as offline.
	early.Close()
	until(t, changed, "early-1 offline", func() bool {
		rs, _ := rest.Follow("c2", earlier)
		return len(rs) == 4 && rs[2].Name == "early-1" && !rs[2].Online
	})

	// Once its wave started, the device follows nothing.
	if rs, complete := rest.Follow("", nil); rs != nil || !complete {
		t.Errorf("following nothing: %v, %v", rs, complete)
	}

	// can-1 moves on to c3, then c4: its record of c2 is cleared, that of
	// c3 kept (devices of later waves may still roll c3 out).
	publish(can1, DeviceStatus{Labels: canary, Wave: "canary", Desired: "c3", LastGood: "c3", GoodSince: t0})
	publish(can1, DeviceStatus{Labels: canary, Wave: "canary", Desired: "c4", LastGood: "c3", GoodSince: t0})
	until(t, changed, "can-1's record of c2 cleared", func() bool {
		rs, complete := rest.Follow("c2", []string{"canary"})
		return complete && len(rs) == 2 && rs[0].Name == "can-2" && rs[1].Name == "rest-2"
	})
	until(t, changed, "can-1's record of c3 kept", func() bool {
		rs, complete := rest.Follow("c3", []string{"canary"})
		return complete && len(rs) == 1 && rs[0].Name == "can-1" && rs[0].LastGood == "c3"
	})
}

// TestFollowingMarker checks the bookkeeping: a sync marker of an older
// interest does not complete a newer one, and messages of another
// commit or wave are not taken.
func TestFollowingMarker(t *testing.T) {
	var f following
	f.reset("c1", []string{"canary"})
	add, drop, m1 := f.plan("edge", "sync")
	if diff := cmp.Diff([]string{"berth/edge/rollout/c1/failed/+", "berth/edge/rollout/c1/wave/canary/+", "sync"}, add); diff != "" || drop != nil || m1 == "" {
		t.Fatalf("plan: add (-want +got)\n%s drop %v marker %q", diff, drop, m1)
	}
	f.reset("c2", []string{"canary"})
	add, drop, m2 := f.plan("edge", "sync")
	if len(add) != 2 || len(drop) != 2 || m2 == m1 {
		t.Fatalf("second plan: add %v drop %v marker %q after %q", add, drop, m2, m1)
	}
	if changed, _ := f.handle("sync", "sync", []byte(m1)); changed || f.synced {
		t.Error("the marker of the former interest completed the new one")
	}
	rec := []byte(`{"node":"can-1","wave":"canary","healthy":true}`)
	for _, topic := range []string{"berth/edge/rollout/c1/wave/canary/can-1", "berth/edge/rollout/c2/wave/early/can-1", "berth/edge/rollout/c2/wave/canary/can-2"} {
		if changed, _ := f.handle("sync", topic, rec); changed {
			t.Errorf("took %s", topic)
		}
	}
	if changed, newNode := f.handle("sync", "berth/edge/rollout/c2/wave/canary/can-1", rec); !changed || !newNode {
		t.Error("did not take a record of the followed wave")
	}
	if changed, _ := f.handle("sync", "sync", []byte(m2)); !changed || !f.synced {
		t.Error("the marker did not complete the interest")
	}
	add, _, m3 := f.plan("edge", "sync")
	if !cmp.Equal(add, []string{"berth/edge/can-1/online"}) || m3 != "" {
		t.Errorf("after a new device: add %v marker %q, want its presence flag and no new marker", add, m3)
	}
}

package mqtt

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSummarize(t *testing.T) {
	t1 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	dev := func(node, wave string, idx int, desired, good string, online bool) DeviceStatus {
		return DeviceStatus{Node: node, Wave: wave, WaveIndex: idx, Desired: desired, DesiredTime: t1, LastGood: good, Online: online, Health: Waiting}
	}
	ds := []DeviceStatus{
		dev("can-1", "canary", 0, "bbbbbbbbbbbbbbbb", "bbbbbbbbbbbbbbbb", true),
		dev("can-2", "canary", 0, "bbbbbbbbbbbbbbbb", "aaaa", true),
		dev("can-3", "canary", 0, "bbbbbbbbbbbbbbbb", "aaaa", false),
		dev("dev-1", "rest", 1, "bbbbbbbbbbbbbbbb", "aaaa", true),
		dev("dev-2", "rest", 1, "bbbbbbbbbbbbbbbb", "aaaa", true),
		dev("old-1", "", 0, "aaaa", "aaaa", true),
	}
	ds[1].Health, ds[1].Failed, ds[1].Failure = Failed, []string{"bbbbbbbbbbbbbbbb"}, "container \"app\" exited with code 1"
	ds[3].Rollout, ds[3].Waiting = Halted, "rollout of bbbbbbbbbbbb halted"
	ds[4].Rollout, ds[4].Waiting = Halted, "rollout of bbbbbbbbbbbb halted"
	ds[5].DesiredTime = t1.Add(-time.Hour)
	var b bytes.Buffer
	if err := WriteText(&b, Summarize("edge", ds)); err != nil {
		t.Fatal(err)
	}
	want := `fleet edge: 6 devices

REVISION      WAVE    DEVICES  HEALTHY  FAILED  PENDING  OFFLINE  ROLLOUT
bbbbbbbbbbbb  canary  3        1        1       0        1        -
bbbbbbbbbbbb  rest    2        0        0       2        0        halted
aaaa          -       1        1        0       0        0        done
failed   bbbbbbbbbbbb canary: can-2: container "app" exited with code 1
offline  bbbbbbbbbbbb canary: can-3
waiting  bbbbbbbbbbbb rest: rollout of bbbbbbbbbbbb halted
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
}

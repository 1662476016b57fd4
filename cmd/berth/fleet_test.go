package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth.dev/berth/fleet/mqtt"
	"berth.dev/berth/internal/mosquitto"
)

// TestFleetStatusCommand runs berth fleet status against mosquitto with
// username and password, the password read from a file.
func TestFleetStatusCommand(t *testing.T) {
	b := mosquitto.Start(t, mosquitto.Options{Username: "ops", Password: "pw-123"})
	opts := mqtt.Options{URL: b.URL, Fleet: "shop", Username: "ops", Password: "pw-123"}
	for _, n := range []struct{ node, good string }{{"till-1", "c2"}, {"till-2", "c1"}} {
		d, err := mqtt.Connect(context.Background(), opts, n.node, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if err := d.Publish(mqtt.DeviceStatus{Wave: "canary", Desired: "c2", LastGood: n.good, Health: mqtt.Waiting, Waiting: "soak"}); err != nil {
			t.Fatal(err)
		}
	}
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("pw-123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"fleet", "--mqtt", b.URL, "--fleet", "shop", "--mqtt-username", "ops", "--mqtt-password-file", pw}
	var out, errOut bytes.Buffer
	if code := run(append(append([]string(nil), args...), "-o", "json", "status"), &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var s mqtt.Summary
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	if s.Devices != 2 || len(s.Groups) != 1 || s.Groups[0].Healthy != 1 || s.Groups[0].Pending != 1 {
		t.Fatalf("summary: %s", out.String())
	}
	out.Reset()
	if code := run(append(args, "status"), &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "c2        canary  2        1        0       1        0        in progress") {
		t.Errorf("table:\n%s", out.String())
	}
	if strings.Contains(out.String()+errOut.String(), "pw-123") {
		t.Error("the password appears in the output")
	}
}

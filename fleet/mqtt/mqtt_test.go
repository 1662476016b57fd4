package mqtt

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"berth.dev/berth/internal/mosquitto"
)

// eventually polls cond until it holds or the deadline passes: a broker
// delivers a Last Will or a reconnect on its own schedule.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func status(desired, good string) DeviceStatus {
	return DeviceStatus{Labels: map[string]string{"ring": "canary"}, Wave: "canary", Rollout: "apply",
		Desired: desired, Applied: desired, LastGood: good, Health: Healthy,
		Pods: PodsSummary{Total: 2, Running: 2, Ready: 2}}
}

// TestPublishCollect runs against mosquitto without security, with
// username and password, and with TLS and a client certificate: two
// devices publish, berth fleet status's Collect reads both, a device
// follows the other, and wrong credentials are refused.
func TestPublishCollect(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts mosquitto.Options
	}{
		{"plain", mosquitto.Options{}},
		{"password", mosquitto.Options{Username: "fleet", Password: "s3cret"}},
		{"tls", mosquitto.Options{TLS: true, Username: "fleet", Password: "s3cret"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			b := mosquitto.Start(t, tc.opts)
			opts := Options{URL: b.URL, Fleet: "edge", Username: tc.opts.Username, Password: tc.opts.Password,
				CAFile: b.CAFile, CertFile: b.CertFile, KeyFile: b.KeyFile, ConnectTimeout: 5 * time.Second}
			changed := make(chan struct{}, 100)
			a, err := Connect(ctx, opts, "dev-a", func() { changed <- struct{}{} })
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			c, err := Connect(ctx, opts, "dev-c", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := a.Publish(status("c2", "c2")); err != nil {
				t.Fatal(err)
			}
			if err := c.Publish(status("c2", "c1")); err != nil {
				t.Fatal(err)
			}
			got, err := Collect(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			want := []DeviceStatus{status("c2", "c2"), status("c2", "c1")}
			want[0].Node, want[1].Node = "dev-a", "dev-c"
			want[0].Online, want[1].Online = true, true
			if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(DeviceStatus{}, "LastSeen")); diff != "" {
				t.Errorf("collected (-want +got):\n%s", diff)
			}
			// dev-a, waiting in wave rest, follows wave canary of c2.
			if _, complete := a.Follow("c2", []string{"canary"}); complete {
				t.Error("complete before the broker answered")
			}
			until(t, changed, "dev-a to see dev-c", func() bool {
				rs, complete := a.Follow("c2", []string{"canary"})
				return complete && len(rs) == 1 && rs[0].Name == "dev-c" && rs[0].Online && rs[0].LastGood == ""
			})

			bad := opts
			switch {
			case tc.opts.TLS:
				bad.CertFile, bad.KeyFile = "", ""
			case tc.opts.Username != "":
				bad.Password = "wrong"
			default:
				return
			}
			if _, err := Collect(ctx, bad); err == nil {
				t.Error("connected without the right credentials")
			} else if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

// TestLastWill cuts a device's connection without an MQTT DISCONNECT: the
// broker marks it offline; when the connection is back the device
// publishes its latest status, changed while it was offline.
func TestLastWill(t *testing.T) {
	ctx := context.Background()
	b := mosquitto.Start(t, mosquitto.Options{})
	proxy := mosquitto.NewProxy(t, b.Addr)
	direct := Options{URL: b.URL, Fleet: "edge", ConnectTimeout: 5 * time.Second, MaxReconnectInterval: 200 * time.Millisecond}
	viaProxy := direct
	viaProxy.URL = "mqtt://" + proxy.Addr
	d, err := Connect(ctx, viaProxy, "dev-a", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Publish(status("c1", "c1")); err != nil {
		t.Fatal(err)
	}
	online := func(desired string) func() bool {
		return func() bool {
			got, err := Collect(ctx, direct)
			return err == nil && len(got) == 1 && got[0].Online == (desired != "") && (desired == "" || got[0].Desired == desired)
		}
	}
	eventually(t, "dev-a online", online("c1"))
	proxy.Cut()
	eventually(t, "dev-a offline", online(""))
	if err := d.Publish(status("c2", "c1")); err != nil {
		t.Fatalf("publish while offline: %v", err)
	}
	proxy.Restore()
	eventually(t, "dev-a back online with its latest status", online("c2"))

	// An orderly close marks it offline too.
	d.Close()
	got, err := Collect(ctx, direct)
	if err != nil || len(got) != 1 || got[0].Online {
		t.Fatalf("after Close: %+v, %v", got, err)
	}
}

func TestOptions(t *testing.T) {
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{URL: "mqtt://u:p@host:1883"}, "not in the URL"},
		{Options{URL: "http://host:1883"}, "scheme"},
		{Options{URL: "host"}, "want mqtt://host:port"},
		{Options{URL: "mqtt://host:1883", Fleet: "a/b"}, "topic segment"},
		{Options{URL: "mqtts://host:8883", CertFile: "c.pem"}, "both"},
	} {
		err := tc.opts.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.opts, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "u:p") {
			t.Errorf("error shows credentials: %v", err)
		}
	}
}

package containerd_test

import (
	"testing"

	"berth.dev/berth/runtime/containerd"
)

func TestDockerConfigCredentials(t *testing.T) {
	cfg, err := containerd.ParseDockerConfig([]byte(`{"auths": {
		"https://index.docker.io/v1/": {"auth": "aHViOnNlY3JldA=="},
		"registry.example:5000": {"username": "u", "password": "p"},
		"http://10.0.0.5:5000/v2/": {"auth": "YTpi"},
		"broken.example": {"auth": "!!!"}
	}}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		host, user, pass string
		wantErr          bool
	}{
		{"registry-1.docker.io", "hub", "secret", false},
		{"docker.io", "hub", "secret", false},
		{"registry.example:5000", "u", "p", false},
		{"10.0.0.5:5000", "a", "b", false},
		{"other.example", "", "", false},
		{"broken.example", "", "", true},
	} {
		u, p, err := cfg.Credentials(tc.host)
		if (err != nil) != tc.wantErr || u != tc.user || p != tc.pass {
			t.Errorf("Credentials(%s) = %q, %q, %v; want %q, %q, error %v", tc.host, u, p, err, tc.user, tc.pass, tc.wantErr)
		}
	}
	legacy, err := containerd.ParseDockerConfig([]byte(`{"quay.io": {"auth": "cTpw"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if u, p, _ := legacy.Credentials("quay.io"); u != "q" || p != "p" {
		t.Errorf("legacy .dockercfg: %q, %q", u, p)
	}
	if _, err := containerd.ParseDockerConfig([]byte(`not json`)); err == nil {
		t.Errorf("garbage: want an error")
	}
}

func FuzzParseDockerConfig(f *testing.F) {
	f.Add([]byte(`{"auths": {"r.example": {"auth": "dTpw"}}}`))
	f.Add([]byte(`{"r.example": {"username": "u"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := containerd.ParseDockerConfig(b)
		if err != nil {
			return
		}
		for k := range cfg.Auths {
			_, _, _ = cfg.Credentials(k)
		}
	})
}

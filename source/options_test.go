package source

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseLocation(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want location
	}{
		{"https://github.com/org/repo.git", location{kind: locRemote, scheme: "https", remote: "https://github.com/org/repo.git", display: "https://github.com/org/repo.git"}},
		{"https://x-access-token:tok@github.com/org/repo", location{kind: locRemote, scheme: "https", remote: "https://github.com/org/repo", display: "https://github.com/org/repo", user: "x-access-token", password: "tok"}},
		{"http://tok@host:8080/r", location{kind: locRemote, scheme: "http", remote: "http://host:8080/r", display: "http://host:8080/r", user: "tok"}},
		{"ssh://git@host:2222/org/repo.git", location{kind: locRemote, scheme: "ssh", remote: "ssh://git@host:2222/org/repo.git", display: "ssh://host:2222/org/repo.git", user: "git"}},
		{"ssh://git:pw@host/org/repo.git", location{kind: locRemote, scheme: "ssh", remote: "ssh://git@host/org/repo.git", display: "ssh://host/org/repo.git", user: "git", password: "pw"}},
		{"git@github.com:org/repo.git", location{kind: locRemote, scheme: "ssh", remote: "git@github.com:org/repo.git", display: "github.com:org/repo.git", user: "git"}},
		{"host.example:repo", location{kind: locRemote, scheme: "ssh", remote: "host.example:repo", display: "host.example:repo"}},
		{"git://127.0.0.1:9418/repo.git", location{kind: locRemote, scheme: "git", remote: "git://127.0.0.1:9418/repo.git", display: "git://127.0.0.1:9418/repo.git"}},
		{"file:///srv/git/repo.git", location{kind: locLocal, scheme: "file", display: "file:///srv/git/repo.git", path: "/srv/git/repo.git", explicitFile: true}},
		{"/srv/repo", location{kind: locLocal, display: "/srv/repo", path: "/srv/repo"}},
		{"./dir:with-colon", location{kind: locLocal, display: "./dir:with-colon", path: "./dir:with-colon"}},
		{"relative/dir", location{kind: locLocal, display: "relative/dir", path: "relative/dir"}},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseLocation(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, *got, cmp.AllowUnexported(location{})); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	for _, in := range []string{"ftp://host/x", "https:///nohost", "file://otherhost/x", "file://relative", "https://user:pa ss@host\x7f/x"} {
		t.Run("bad "+in, func(t *testing.T) {
			_, err := parseLocation(in)
			if err == nil {
				t.Fatalf("%q accepted", in)
			}
			if strings.Contains(err.Error(), "pa ss") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

func TestDisplayURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://u:p@h/r.git": "https://h/r.git",
		"git@github.com:o/r":  "github.com:o/r",
		"/srv/repo":           "/srv/repo",
		"https://u:p@h\x7f/r": "https://h\x7f/r",
	} {
		if got := DisplayURL(in); got != want {
			t.Errorf("DisplayURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCleanPath(t *testing.T) {
	for in, want := range map[string]string{
		"": "", ".": "", "./": "", "apps": "apps", "./apps/web/": "apps/web", "apps//web": "apps/web", "a/./b": "a/b",
	} {
		got, err := cleanPath(in)
		if err != nil || got != want {
			t.Errorf("cleanPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"/abs", "..", "../x", "a/../../x", "a/..", "a\x00b"} {
		if got, err := cleanPath(in); err == nil {
			t.Errorf("cleanPath(%q) = %q, want an error", in, got)
		}
	}
}

func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{"", "a/b", "../x", "/x", "a/./b/", "a/b/../c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := cleanPath(in)
		if err != nil {
			return
		}
		if strings.HasPrefix(got, "/") || got == "." {
			t.Fatalf("cleanPath(%q) = %q", in, got)
		}
		for _, e := range strings.Split(got, "/") {
			if e == ".." || (got != "" && (e == "" || e == ".")) {
				t.Fatalf("cleanPath(%q) = %q", in, got)
			}
		}
	})
}

func FuzzParseLocation(f *testing.F) {
	for _, s := range []string{"https://u:p@h/x", "git@h:x", "ssh://u:p@h/x", "file:///x", "/x", "h:p"} {
		f.Add(s, "secretpw")
	}
	f.Fuzz(func(t *testing.T, prefix, pw string) {
		if len(pw) < 6 || strings.ContainsAny(pw, "@/:%?#[] \t\n\x00") {
			return
		}
		in := "https://user:" + pw + "@" + prefix
		loc, err := parseLocation(in)
		if err != nil {
			if strings.Contains(err.Error(), ":"+pw) {
				t.Fatalf("error %q shows the password", err)
			}
			return
		}
		if strings.Contains(loc.display, ":"+pw+"@") || strings.Contains(loc.remote, ":"+pw+"@") ||
			strings.Contains(loc.display, "user:") || strings.Contains(loc.remote, "user:") {
			t.Fatalf("parseLocation(%q) = display %q remote %q", in, loc.display, loc.remote)
		}
	})
}

func TestValidateDefaults(t *testing.T) {
	o := Options{URL: " https://h/r.git ", Path: "./apps/"}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if o.URL != "https://h/r.git" || o.Path != "apps" || o.MaxFileSize != DefaultMaxFileSize ||
		o.MaxTotalSize != DefaultMaxTotalSize || o.MaxFiles != DefaultMaxFiles || o.Logger == nil {
		t.Errorf("after Validate: %+v", o)
	}
	for _, bad := range []Options{
		{},
		{URL: "https://h/r", Path: "../x"},
		{URL: "https://h/r", MaxFileSize: -1},
		{URL: "https://h/r", Auth: Auth{BearerToken: "t", Password: "p"}},
		{URL: "gopher://h/r"},
		{URL: "https://h/r", ForceDir: true},
		{URL: "/srv/x", Ref: "main", ForceDir: true},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil", bad)
		}
	}
}

func TestAuthStringHidesSecrets(t *testing.T) {
	a := Auth{Username: "u", Password: "pw-secret", BearerToken: "tok-secret", SSHKeyPassphrase: "pass-secret", SSHKeyFile: "/k"}
	o := Options{URL: "https://h/r", Auth: a}
	for _, s := range []string{a.String(), fmt.Sprint(a), fmt.Sprintf("%+v", o), fmt.Sprintf("%#v", a), fmt.Sprintf("%v", &o)} {
		if strings.Contains(s, "secret") {
			t.Errorf("%q shows a secret", s)
		}
	}
}

func TestRedactor(t *testing.T) {
	loc, err := parseLocation("https://user:urlpw@host/r")
	if err != nil {
		t.Fatal(err)
	}
	r := newRedactor("https://user:urlpw@host/r", loc.display, Auth{Password: "optpw"}, loc)
	base := errors.New(`Get "https://user:urlpw@host/r/info/refs": optpw rejected, also https://other:zzz@x/`)
	err = r.wrap(base)
	for _, leak := range []string{"urlpw", "optpw", "zzz", "user:"} {
		if strings.Contains(err.Error(), leak) {
			t.Errorf("%q contains %q", err, leak)
		}
	}
	if !errors.Is(err, base) {
		t.Error("redacted error does not match the original")
	}
	if errors.Unwrap(err) != nil {
		t.Error("redacted error unwraps to the original text")
	}
}

func TestRevisionString(t *testing.T) {
	r := &Revision{Commit: "0123456789abcdef0123456789abcdef01234567", URL: "https://h/r", Path: "apps"}
	if got := r.String(); got != "https://h/r//apps@0123456789ab" {
		t.Errorf("String() = %q", got)
	}
	d := &Revision{Commit: "dir:sha256:" + strings.Repeat("ab", 32), URL: "/srv/x"}
	if got := d.String(); got != "/srv/x@dir:abababababab" {
		t.Errorf("String() = %q", got)
	}
}

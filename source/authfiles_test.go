package source

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestAuthFiles(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pw := file("pw", "hunter2\n")
	tok := file("tok", "  tok-123\n")
	empty := file("empty", "\n")
	env := map[string]string{EnvGitPassword: "from-env", EnvGitUsername: "envuser"}
	for _, tc := range []struct {
		name    string
		files   AuthFiles
		env     map[string]string
		want    Auth
		wantErr string
	}{
		{"password file", AuthFiles{UsernameFile: file("u", "bot"), PasswordFile: pw}, nil, Auth{Username: "bot", Password: "hunter2"}, ""},
		{"token file", AuthFiles{TokenFile: tok}, nil, Auth{BearerToken: "tok-123"}, ""},
		{"token with username is basic auth", AuthFiles{TokenFile: tok}, map[string]string{EnvGitUsername: "bot"}, Auth{Username: "bot", Password: "tok-123"}, ""},
		{"environment", AuthFiles{}, env, Auth{Username: "envuser", Password: "from-env"}, ""},
		{"file wins over environment", AuthFiles{PasswordFile: pw}, env, Auth{Username: "envuser", Password: "hunter2"}, ""},
		{"empty file", AuthFiles{PasswordFile: empty}, nil, Auth{}, "is empty"},
		{"missing file", AuthFiles{PasswordFile: filepath.Join(dir, "nope")}, nil, Auth{}, "no such file"},
		{"both", AuthFiles{PasswordFile: pw, TokenFile: tok}, nil, Auth{}, "not both"},
		{"ssh", AuthFiles{SSHKeyFile: "/k", SSHKnownHostsFile: "/kh", SSHUser: "git"}, nil, Auth{SSHKeyFile: "/k", SSHKnownHostsFile: "/kh", SSHUser: "git"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.files.Getenv = func(k string) string { return tc.env[k] }
			got, err := tc.files.Load()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "tok-123") {
					t.Fatalf("error shows a secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b Auth) bool { return a == b })); diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}
		})
	}
}

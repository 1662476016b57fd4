package source

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// sshKey makes an ed25519 key pair with ssh-keygen and returns the private
// key path and an allowed_signers line for it.
func sshKey(t *testing.T, dir, name, principal string) (key, allowed string) {
	t.Helper()
	key = filepath.Join(dir, name)
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", principal, "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	return key, principal + ` namespaces="git" ` + strings.TrimSpace(string(pub)) + "\n"
}

// sshSigned runs git with SSH signing by key.
func sshSigned(t *testing.T, dir, key string, args ...string) string {
	t.Helper()
	return gitRun(t, dir, append([]string{"-c", "gpg.format=ssh", "-c", "user.signingkey=" + key}, args...)...)
}

func TestVerifySignatures(t *testing.T) {
	keys := t.TempDir()
	trusted, allowed := sshKey(t, keys, "trusted", "ops@berth.invalid")
	stranger, _ := sshKey(t, keys, "stranger", "eve@berth.invalid")
	if err := os.WriteFile(filepath.Join(keys, "allowed_signers"), []byte("# trusted\n"+allowed), 0o644); err != nil {
		t.Fatal(err)
	}

	// An OpenPGP key, and its armored public keyring.
	entity, err := openpgp.NewEntity("Release Bot", "", "release@berth.invalid", nil)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := os.Create(filepath.Join(keys, "release.asc"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := armor.Encode(ring, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := entity.Serialize(w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	ring.Close()
	otherPGP, _ := openpgp.NewEntity("Other", "", "other@berth.invalid", nil)

	r := newTestRepo(t)
	unsigned := r.commit("unsigned", map[string]string{"a.yaml": "a: 1\n"})
	r.write(map[string]string{"a.yaml": "a: 2\n"})
	gitRun(t, r.work, "add", "-A")
	sshSigned(t, r.work, trusted, "commit", "-q", "-S", "-m", "signed")
	sshGood := gitRun(t, r.work, "rev-parse", "HEAD")
	sshSigned(t, r.work, trusted, "tag", "-s", "-m", "release", "v1.0.0")
	gitRun(t, r.work, "tag", "light")
	sshSigned(t, r.work, stranger, "tag", "-s", "-m", "forged", "v1.0.1")
	r.write(map[string]string{"a.yaml": "a: 3\n"})
	gitRun(t, r.work, "add", "-A")
	sshSigned(t, r.work, stranger, "commit", "-q", "-S", "-m", "by a stranger")
	sshBad := gitRun(t, r.work, "rev-parse", "HEAD")
	pgpCommit := func(msg string, key *openpgp.Entity) string {
		repo, err := git.PlainOpen(r.work)
		if err != nil {
			t.Fatal(err)
		}
		wt, _ := repo.Worktree()
		r.write(map[string]string{"a.yaml": msg + "\n"})
		if _, err := wt.Add("a.yaml"); err != nil {
			t.Fatal(err)
		}
		sig := &object.Signature{Name: "Berth Test", Email: "test@berth.invalid", When: time.Unix(1700000000, 0)}
		h, err := wt.Commit(msg, &git.CommitOptions{Author: sig, Committer: sig, SignKey: key})
		if err != nil {
			t.Fatal(err)
		}
		return h.String()
	}
	pgpGood := pgpCommit("pgp", entity)
	pgpBad := pgpCommit("pgp-other", otherPGP)

	tk, err := LoadTrustedKeys(filepath.Join(keys, "allowed_signers"), filepath.Join(keys, "release.asc"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, ref string
		mode      VerifyMode
		signer    string
		wantErr   error
	}{
		{"ssh signed commit", sshGood, VerifyHead, "ops@berth.invalid", nil},
		{"unsigned commit", unsigned, VerifyHead, "", ErrUnsigned},
		{"ssh commit by unknown key", sshBad, VerifyHead, "", ErrUntrusted},
		{"pgp signed commit", pgpGood, VerifyHead, "Release Bot <release@berth.invalid>", nil},
		{"pgp commit by unknown key", pgpBad, VerifyHead, "", ErrUntrusted},
		{"signed tag", "v1.0.0", VerifyTag, "ops@berth.invalid", nil},
		{"signed tag and head", "v1.0.0", VerifyTagAndHead, "ops@berth.invalid, ops@berth.invalid", nil},
		{"tag by unknown key", "v1.0.1", VerifyTag, "", ErrUntrusted},
		{"lightweight tag", "light", VerifyTag, "", ErrUnsigned},
		{"no mode", unsigned, VerifyNone, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustOpen(t, Options{URL: r.work, Ref: tc.ref})
			rev, _ := mustFetch(t, s)
			who, err := s.Verify(context.Background(), rev, tc.mode, tk)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("error %v, want %v", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), rev.ShortCommit()) && !strings.Contains(err.Error(), tc.ref) {
					t.Fatalf("error %q names neither the commit nor the tag", err)
				}
				return
			}
			if err != nil || who != tc.signer {
				t.Fatalf("signer %q, error %v; want %q", who, err, tc.signer)
			}
		})
	}
	if _, err := mustOpen(t, Options{URL: r.work, Ref: sshGood}).Verify(context.Background(), &Revision{Commit: sshGood, Ref: "refs/heads/main"}, VerifyTag, tk); err == nil {
		t.Fatal("tag mode accepted a revision not resolved from a tag")
	}
}

func TestParseAllowedSigners(t *testing.T) {
	dir := t.TempDir()
	_, line := sshKey(t, dir, "k", "a@b")
	other := strings.Replace(line, `namespaces="git"`, `namespaces="file"`, 1)
	for _, tc := range []struct {
		name    string
		content string
		n       int
		bad     bool
	}{
		{"git namespace", line, 1, false},
		{"other namespace skipped", other, 0, false},
		{"no options", strings.Replace(line, `namespaces="git" `, "", 1), 1, false},
		{"comments", "# x\n\n" + line, 1, false},
		{"garbage", "a@b ssh-ed25519 !!!\n", 0, true},
		{"cert authority", strings.Replace(line, `namespaces="git"`, "cert-authority", 1), 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseAllowedSigners([]byte(tc.content))
			if (err != nil) != tc.bad || len(got) != tc.n {
				t.Fatalf("%d signers, error %v", len(got), err)
			}
		})
	}
}

func FuzzVerifySSH(f *testing.F) {
	f.Add([]byte("payload"), "-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n")
	k := &TrustedKeys{}
	f.Fuzz(func(t *testing.T, payload []byte, sig string) {
		if _, err := k.verifySSH(payload, sig); err == nil {
			t.Fatal("verified without any trusted key")
		}
	})
}

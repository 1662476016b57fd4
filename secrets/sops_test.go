package secrets_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	yaml "go.yaml.in/yaml/v3"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/schema"
	"berth.dev/berth/secrets"
	"berth.dev/berth/secrets/secretstest"
)

// canary is a secret value no output of berth may ever hold.
const canary = "canary-7f3a9c-never-at-rest"

const secretYAML = `# the database password
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: shop
type: Opaque
stringData:
  password: ` + canary + `
  pin: "0042"
data:
  token: Y2FuYXJ5LTdmM2E5Yy1uZXZlci1hdC1yZXN0
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: shop
data:
  level: debug
  multi: |
    line one
    line two
  list: "a"
extra:
  count: 3
  ratio: 1.5
  on: true
  items: [x, y]
  empty: ""
`

// appPod needs Secret db.
const appPod = `apiVersion: v1
kind: Pod
metadata: {name: app, namespace: shop}
spec:
  containers:
  - name: app
    image: example.local/app:1
    env:
    - name: PASSWORD
      valueFrom: {secretKeyRef: {name: db, key: password}}
`

// plainDocs decodes a YAML stream into values, dropping "sops" keys.
func plainDocs(t *testing.T, data []byte) []any {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []any
	for {
		var v map[string]any
		if err := dec.Decode(&v); err != nil {
			if err.Error() == "EOF" {
				return docs
			}
			t.Fatalf("decode: %v\n%s", err, data)
		}
		if v == nil {
			continue
		}
		delete(v, "sops")
		docs = append(docs, v)
	}
}

func keyring(t *testing.T, id secretstest.Identity) *secrets.Keyring {
	t.Helper()
	k, err := secrets.Open(id.File, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestDecryptAgreesWithSOPS(t *testing.T) {
	a, b := secretstest.NewIdentity(t), secretstest.NewIdentity(t)
	for _, tc := range []struct {
		name  string
		extra []string
	}{
		{"everything encrypted", nil},
		{"data only", []string{"--encrypted-regex", "^(data|stringData)$"}},
		{"unencrypted suffix", []string{"--unencrypted-suffix", "_plain"}},
		{"mac over encrypted values only", []string{"--encrypted-regex", "^(data|stringData)$", "--mac-only-encrypted"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc := secretstest.Encrypt(t, secretYAML, []string{a.Recipient, b.Recipient}, tc.extra...)
			if bytes.Contains(enc, []byte(canary)) {
				t.Fatal("sops left the canary in the encrypted file")
			}
			for _, id := range []secretstest.Identity{a, b} {
				got, err := keyring(t, id).Decrypt("./s.yaml", enc)
				if err != nil {
					t.Fatalf("Decrypt: %v", err)
				}
				want := secretstest.Decrypt(t, enc, id.File)
				if diff := cmp.Diff(plainDocs(t, want), plainDocs(t, got)); diff != "" {
					t.Errorf("berth and sops disagree (-sops +berth):\n%s\nberth's plaintext:\n%s", diff, got)
				}
				if diff := cmp.Diff(plainDocs(t, []byte(secretYAML)), plainDocs(t, got)); diff != "" {
					t.Errorf("plaintext differs from the original (-want +got):\n%s", diff)
				}
				if n, m := bytes.Count(enc, []byte("\n")), bytes.Count(got, []byte("\n")); n != m {
					t.Errorf("decrypted file has %d lines, encrypted %d: positions would move", m, n)
				}
			}
		})
	}
}

func TestPlainFilesPassThrough(t *testing.T) {
	k := keyring(t, secretstest.NewIdentity(t))
	for _, in := range []string{secretYAML, "sops: {}\nkey: value\n", "not: [valid"} {
		got, err := k.Decrypt("./x.yaml", []byte(in))
		if err != nil || string(got) != in {
			t.Errorf("Decrypt(%q) = %q, %v; want it unchanged", in, got, err)
		}
	}
}

// tamper returns enc with the value of the first line containing key
// changed by edit.
func tamper(t *testing.T, enc []byte, key string, edit func(string) string) ([]byte, int) {
	t.Helper()
	lines := strings.Split(string(enc), "\n")
	for i, l := range lines {
		if strings.Contains(l, key) {
			lines[i] = edit(l)
			return []byte(strings.Join(lines, "\n")), i + 1
		}
	}
	t.Fatalf("no line with %q in\n%s", key, enc)
	return nil, 0
}

func TestTamperedFilesAreRefused(t *testing.T) {
	a := secretstest.NewIdentity(t)
	enc := secretstest.Encrypt(t, secretYAML, []string{a.Recipient}, "--encrypted-regex", "^(data|stringData)$")
	k := keyring(t, a)
	swap := func(l string) string { // swap two characters of the ciphertext
		i := strings.Index(l, "data:") + len("data:")
		b := []byte(l)
		b[i], b[i+1] = b[i+1], b[i]
		if b[i] == b[i+1] {
			b[i] ^= 1
		}
		return string(b)
	}
	for _, tc := range []struct {
		name, key string
		edit      func(string) string
		line      bool // the error points at the edited line
	}{
		{"ciphertext changed", "password:", swap, true},
		{"plain value changed", "name: db", func(l string) string { return strings.Replace(l, "db", "dc", 1) }, false},
		{"value moved to another key", "password:", func(l string) string { return strings.Replace(l, "password:", "passwort:", 1) }, true},
		{"mac changed", "mac:", swap, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad, line := tamper(t, enc, tc.key, tc.edit)
			_, err := k.Decrypt("./s.yaml", bad)
			var e *secrets.Error
			if !errors.As(err, &e) {
				t.Fatalf("Decrypt of a tampered file: %v, want *secrets.Error", err)
			}
			if tc.line && e.Line != line {
				t.Errorf("error at line %d, want %d: %v", e.Line, line, err)
			}
			if e.Line == 0 {
				t.Errorf("error without a position: %v", err)
			}
			if strings.Contains(err.Error(), canary) {
				t.Errorf("error holds the secret: %v", err)
			}
		})
	}
}

func TestNotForThisDevice(t *testing.T) {
	a, other := secretstest.NewIdentity(t), secretstest.NewIdentity(t)
	secret := strings.SplitN(secretYAML, "---\n", 2)[0]
	enc := secretstest.Encrypt(t, secret, []string{a.Recipient}, "--encrypted-regex", "^(data|stringData)$")
	got, err := keyring(t, other).Decrypt("./s.yaml", enc)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(got, []byte("ENC[")) || bytes.Count(got, []byte("\n")) != bytes.Count(enc, []byte("\n")) {
		t.Errorf("not-for-this-device form keeps ciphertext or moves lines:\n%s", got)
	}
	res, err := schema.Load(fstest.MapFS{"s.yaml": {Data: enc}}, schema.Options{Decrypt: keyring(t, other).Decrypt})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Objects) != 1 {
		t.Fatalf("got %d objects, want the Secret", len(res.Objects))
	}
	o := res.Objects[0]
	if o.Key() != "Secret/shop/db" || o.Metadata.Annotations[secrets.NotForThisDevice] != a.Recipient || len(o.Secret.Data) != 3 {
		t.Errorf("got %s annotations %v data keys %d", o.Key(), o.Metadata.Annotations, len(o.Secret.Data))
	}
	if o.Source.Line != 2 {
		t.Errorf("Secret at %s, want line 2 as in the file", o.Source)
	}

	// Everything encrypted: the device cannot tell which Secret it is.
	encAll := secretstest.Encrypt(t, secret, []string{a.Recipient})
	_, err = keyring(t, other).Decrypt("./s.yaml", encAll)
	var e *secrets.Error
	if !errors.As(err, &e) || !strings.Contains(err.Error(), "--encrypted-regex") {
		t.Errorf("fully encrypted file for another device: %v, want an error saying to encrypt only data", err)
	}
	// Only Secrets may be for some devices only.
	cm := strings.SplitN(secretYAML, "---\n", 2)[1]
	encCM := secretstest.Encrypt(t, cm, []string{a.Recipient}, "--encrypted-regex", "^(data|stringData)$")
	if _, err := keyring(t, other).Decrypt("./c.yaml", encCM); err == nil || !strings.Contains(err.Error(), "only Secrets") {
		t.Errorf("ConfigMap for another device: %v, want refused", err)
	}
}

func TestForRecipient(t *testing.T) {
	a, b := secretstest.NewIdentity(t), secretstest.NewIdentity(t)
	enc := secretstest.Encrypt(t, secretYAML, []string{a.Recipient}, "--encrypted-regex", "^(data|stringData)$")
	files := fstest.MapFS{"s.yaml": {Data: []byte(strings.SplitN(string(enc), "\n---\n", 2)[0] + "\n")}, "pod.yaml": {Data: []byte(appPod)}}
	// One load serves every device: the preview's Decrypt does not depend
	// on the recipient.
	res, err := schema.Load(files, schema.Options{Decrypt: secrets.ForRecipient("").Decrypt})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		recipient string
		reads     bool
	}{{a.Recipient, true}, {b.Recipient, false}, {"", false}} {
		objs, waiting, err := secrets.ForRecipient(tc.recipient).Prepare(res.Objects)
		if err != nil {
			t.Fatal(err)
		}
		if tc.reads {
			if len(waiting) != 0 || len(objs) != 2 || len(objs[1].Secret.Data) != 3 {
				t.Errorf("reader: objects %d, waiting %v", len(objs), waiting)
			}
			continue
		}
		want := []secrets.Waiting{{Object: "Pod/shop/app", Source: reconcile.Position{File: "./pod.yaml", Line: 1, Column: 1}, Secrets: []string{"db"}}}
		if diff := cmp.Diff(want, waiting); diff != "" || len(objs) != 0 {
			t.Errorf("recipient %q: objects %d, waiting (-want +got):\n%s", tc.recipient, len(objs), diff)
		}
	}
}

func TestKeygen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "secrets", "age.key")
	r, created, err := secrets.Keygen(path)
	if err != nil || !created || !strings.HasPrefix(r, "age1") {
		t.Fatalf("Keygen = %q, %v, %v", r, created, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("identity file mode: %v %v", fi.Mode(), err)
	}
	r2, created, err := secrets.Keygen(path)
	if err != nil || created || r2 != r {
		t.Errorf("second Keygen = %q, %v, %v; want the same key, not created", r2, created, err)
	}
	k, err := secrets.Open(path, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if got := k.Recipients(); len(got) != 1 || got[0] != r {
		t.Errorf("Recipients = %v, want [%s]", got, r)
	}
}

func TestDigestKey(t *testing.T) {
	state := t.TempDir()
	k1, err := secrets.Open("", state)
	if err != nil {
		t.Fatal(err)
	}
	v := []byte(canary)
	d1, err := k1.Digest(v)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(state, "secrets", "digest.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("digest key mode: %v %v", fi, err)
	}
	k2, _ := secrets.Open("", state)
	k3, _ := secrets.Open("", t.TempDir())
	d2, _ := k2.Digest(v)
	d3, _ := k3.Digest(v)
	if !bytes.Equal(d1, d2) {
		t.Error("digests differ across opens of one state directory")
	}
	if bytes.Equal(d1, d3) {
		t.Error("two devices' digests agree: the key is not device-local")
	}
	if err := os.Chmod(filepath.Join(state, "secrets", "digest.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	k4, _ := secrets.Open("", state)
	if _, err := k4.Digest(v); err == nil {
		t.Error("a digest key readable by others was accepted")
	}
}

// TestSpecHashFollowsReadableValues: re-encrypting the same value keeps a
// pod's spec hash; a new value changes it; and the hash is keyed by the
// device, so it reveals nothing about the value.
func TestSpecHashFollowsReadableValues(t *testing.T) {
	a := secretstest.NewIdentity(t)
	secret := strings.SplitN(secretYAML, "---\n", 2)[0]
	state := t.TempDir()
	hash := func(k *secrets.Keyring, enc []byte) string {
		t.Helper()
		res, err := schema.Load(fstest.MapFS{"s.yaml": {Data: enc}, "pod.yaml": {Data: []byte(appPod)}}, schema.Options{Decrypt: k.Decrypt})
		if err != nil {
			t.Fatal(err)
		}
		objs, waiting, err := k.Prepare(res.Objects)
		if err != nil || len(waiting) > 0 {
			t.Fatalf("Prepare: %v, waiting %v", err, waiting)
		}
		pods, err := reconcile.Expand(objs, "c1", reconcile.ExpandOptions{})
		if err != nil || len(pods) != 1 {
			t.Fatalf("Expand: %v (%d pods)", err, len(pods))
		}
		return pods[0].Hash
	}
	k, err := secrets.Open(a.File, state)
	if err != nil {
		t.Fatal(err)
	}
	enc1 := secretstest.Encrypt(t, secret, []string{a.Recipient})
	enc2 := secretstest.Encrypt(t, secret, []string{a.Recipient, secretstest.NewIdentity(t).Recipient})
	if bytes.Equal(enc1, enc2) {
		t.Fatal("two encryptions are equal")
	}
	h1, h2 := hash(k, enc1), hash(k, enc2)
	if h1 != h2 {
		t.Errorf("re-encryption changed the spec hash: %s → %s", h1, h2)
	}
	changed := strings.Replace(secret, canary, canary+"-2", 1)
	if h3 := hash(k, secretstest.Encrypt(t, changed, []string{a.Recipient})); h3 == h1 {
		t.Error("a new value left the spec hash alone")
	}
	// Another device (another digest key) hashes the same value otherwise.
	k2, err := secrets.Open(a.File, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if hash(k2, enc1) == h1 {
		t.Error("two devices' spec hashes agree: the value's digest is not keyed")
	}
}

// FuzzDecrypt feeds changed SOPS files to a keyring that can open the
// seed (testdata holds a throwaway identity) and to one that cannot: no
// input may panic, and one that is not SOPS is returned as it is.
func FuzzDecrypt(f *testing.F) {
	seed, err := os.ReadFile("testdata/fuzz-seed.sops.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(secretYAML))
	f.Add([]byte("sops:\n  mac: ENC[AES256_GCM,data:AA==,iv:AA==,tag:AA==,type:str]\n  lastmodified: x\na: ENC[AES256_GCM,data:AA==,iv:AA==,tag:AAAAAAAAAAAAAAAAAAAAAA==,type:str]\n"))
	f.Add([]byte("a: 1\nsops:\n  mac: ENC[AES256_GCM,\n  age: [{recipient: x, enc: y}]\n"))
	k := secrets.ForRecipient("")
	dev, err := secrets.Open("", "")
	if err != nil {
		f.Fatal(err)
	}
	reader, err := secrets.Open("testdata/fuzz-seed.age.key", "")
	if err != nil {
		f.Fatal(err)
	}
	if out, err := reader.Decrypt("./seed.yaml", seed); err != nil || !bytes.Contains(out, []byte("fuzz-seed-value")) {
		f.Fatalf("the seed does not decrypt: %v", err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, kr := range []*secrets.Keyring{k, dev, reader} {
			out, err := kr.Decrypt("./f.yaml", data)
			if err == nil && !secrets.Looks(data) && !bytes.Equal(out, data) {
				t.Fatalf("a file that is not SOPS was changed")
			}
		}
	})
}

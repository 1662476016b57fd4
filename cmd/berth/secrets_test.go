package main

import (
	"strings"
	"testing"

	"berth.dev/berth/secrets/secretstest"
)

// TestVetEncryptedFiles: vet in CI has no device key. A file encrypted to
// devices, with its names in clear, is valid there; one whose names are
// encrypted too, or that was changed after encryption, is an error at its
// position; no value is printed.
func TestVetEncryptedFiles(t *testing.T) {
	device := secretstest.NewIdentity(t)
	secret := "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {password: canary-vet-61d2}\n"
	good := secretstest.Encrypt(t, secret, []string{device.Recipient}, "--encrypted-regex", "^(data|stringData)$")
	allEncrypted := secretstest.Encrypt(t, secret, []string{device.Recipient})
	state := t.TempDir()
	for _, tc := range []struct {
		name, file string
		code       int
		want       string
	}{
		{"names in clear", string(good), 0, ""},
		{"names encrypted", string(allEncrypted), 1, "./db.yaml:2:7: this device cannot decrypt the file, and its kind is encrypted"},
		{"tampered, with the key", strings.Replace(string(good), "name: db", "name: dc", 1), 1, "./db.yaml:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeRepo(t, map[string]string{"db.yaml": tc.file})
			args := []string{"--state-dir", state}
			if strings.HasPrefix(tc.name, "tampered") {
				args = append(args, "--age-identity", device.File)
			}
			code, out, errOut := vet(t, append(args, dir)...)
			if code != tc.code || !strings.Contains(out+errOut, tc.want) {
				t.Errorf("exit %d, want %d with %q\nstdout:\n%s\nstderr:\n%s", code, tc.code, tc.want, out, errOut)
			}
			if strings.Contains(out+errOut, "canary-vet-61d2") {
				t.Error("vet printed a secret value")
			}
		})
	}
}

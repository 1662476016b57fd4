package secrets

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"filippo.io/age"
	yaml "go.yaml.in/yaml/v3"

	"berth.dev/berth/internal/record"
)

// NotForThisDevice is the annotation berth puts on a Secret whose file
// this device cannot decrypt; its value lists the age recipients the file
// is encrypted to. Such a Secret holds only placeholders: Prepare takes it
// out of the revision and holds back the pods that need it.
const NotForThisDevice = "berth.dev/not-for-this-device"

// Keyring opens SOPS-encrypted files for one device: with the device's age
// identities (on the device), or, for a preview, knowing only the device's
// public key. It also keys the digests of Secret values in spec hashes.
// A Keyring is safe for concurrent use.
type Keyring struct {
	ids []age.Identity
	// recipient, when set (previews), is the device's public key: a file
	// encrypted to it counts as readable without being decrypted.
	recipient string
	// preview is set for ForRecipient keyrings.
	preview bool
	// digestKey returns the key of the digests of Secret values
	// (HMAC-SHA256), read or made on first use; nil for previews, which
	// set no digests.
	digestKey func() ([]byte, error)
}

// DefaultIdentityFile is where the device's age identity is kept, under the
// state directory.
const DefaultIdentityFile = "secrets/age.key"

// digestKeyFile is the device-local key of Secret digests, under the state
// directory.
const digestKeyFile = "secrets/digest.key"

// Open returns the keyring of a device: the age identities in identityFile
// (a missing file means none: every encrypted file is then not for this
// device) and the digest key under stateDir, read or created (0600) when a
// digest is first asked for. An empty stateDir keys digests for this
// process only.
func Open(identityFile, stateDir string) (*Keyring, error) {
	k := &Keyring{digestKey: func() ([]byte, error) { return processKey, nil }}
	if identityFile != "" {
		data, err := os.ReadFile(identityFile)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("age identity: %w", err)
		default:
			if k.ids, err = age.ParseIdentities(bytes.NewReader(data)); err != nil {
				return nil, fmt.Errorf("age identity %s: %w", identityFile, err)
			}
		}
	}
	if stateDir != "" {
		k.digestKey = sync.OnceValues(func() ([]byte, error) {
			b, err := loadOrCreateKey(filepath.Join(stateDir, digestKeyFile))
			if err != nil {
				return nil, fmt.Errorf("secret digest key: %w", err)
			}
			return b, nil
		})
	}
	return k, nil
}

// ForRecipient returns a keyring for previews of a device known by its age
// public key (empty: a device without one). It decrypts nothing, and its
// Decrypt gives the same result whatever the device, so that loads are
// shared between devices: each Secret of an encrypted file becomes its
// identity, the recipients it is encrypted to (NotForThisDevice) and
// placeholder values that change when the ciphertext changes. Prepare then
// keeps the Secrets encrypted to recipient, as readable, and holds back
// the objects that need the others. It sets no digests: its Secrets hold
// no plaintext, only placeholders, so spec hashes stay reproducible.
func ForRecipient(recipient string) *Keyring {
	return &Keyring{recipient: strings.TrimSpace(recipient), preview: true}
}

// processKey keys digests in processes that have no state directory
// (previews): spec hashes then agree within the process, which is all a
// preview compares.
var processKey = func() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return b
}()

// Recipients returns the public keys of the keyring's X25519 identities.
func (k *Keyring) Recipients() []string {
	var rs []string
	for _, id := range k.ids {
		if x, ok := id.(*age.X25519Identity); ok {
			rs = append(rs, x.Recipient().String())
		}
	}
	return rs
}

// Digest returns the keyed digest of a Secret value (HMAC-SHA256 with the
// device-local key): equal values give equal digests on this device, and a
// digest tells nothing about a value to whoever lacks the key.
func (k *Keyring) Digest(value []byte) ([]byte, error) {
	if k.digestKey == nil {
		return nil, errors.New("this keyring keys no digests")
	}
	key, err := k.digestKey()
	if err != nil {
		return nil, err
	}
	m := hmac.New(sha256.New, key)
	m.Write(value)
	return m.Sum(nil), nil
}

// Decrypt is the loader's hook (schema.Options.Decrypt): it returns data as
// it is when it is not SOPS-encrypted; the plaintext, with the SOPS
// metadata blanked out and line numbers kept, when the device can decrypt
// it and its MAC verifies; and, when the file is not encrypted to this
// device, each document reduced to the identity of its Secret annotated
// NotForThisDevice. An *Error says why the file is refused.
func (k *Keyring) Decrypt(name string, data []byte) ([]byte, error) {
	f, err := parse(data)
	if err != nil || f == nil {
		return data, err
	}
	if k.preview {
		return f.identities()
	}
	key, err := f.dataKey(k.ids)
	if errors.Is(err, errNoIdentity) {
		return f.identities()
	}
	if err != nil {
		return nil, err
	}
	return f.decrypt(key)
}

// identities reduces each document of f to one line at its start, naming
// its Secret with the NotForThisDevice annotation and the keys of its data
// (which SOPS leaves in clear) with placeholder values derived from their
// ciphertext, so references to its keys check; it blanks the rest, so
// positions stay those of the file. The kind, name and namespace
// must not be encrypted (encrypt only data and stringData:
// --encrypted-regex '^(data|stringData)$'), and only Secrets may be for
// some devices only.
func (f *file) identities() ([]byte, error) {
	lines := bytes.SplitAfter(f.data, []byte("\n"))
	for i, l := range lines {
		if t := bytes.TrimSpace(l); !bytes.Equal(t, []byte("---")) {
			lines[i] = lineEnd(l)
		}
	}
	recipients := strings.Join(f.recipients(), ",")
	if recipients == "" {
		recipients = "no age recipient"
	}
	for _, doc := range f.docs {
		if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
			continue
		}
		m := doc.Content[0]
		str := func(n *yaml.Node, field string) (string, error) {
			_, v := lookup(n, field)
			if v == nil {
				return "", nil
			}
			if v.Kind != yaml.ScalarNode || encValue.MatchString(v.Value) {
				return "", errorAt(v, "this device cannot decrypt the file, and its %s is encrypted: encrypt only data and stringData (sops --encrypted-regex '^(data|stringData)$') so that every device knows which Secret the file holds", field)
			}
			return v.Value, nil
		}
		kind, err := str(m, "kind")
		if err != nil {
			return nil, err
		}
		if kind != "Secret" {
			return nil, errorAt(m, "this device cannot decrypt the file: only Secrets may be encrypted to some devices only, and this document is a %s", cmpOr(kind, "document without a kind"))
		}
		_, meta := lookup(m, "metadata")
		apiVersion, err := str(m, "apiVersion")
		if err != nil {
			return nil, err
		}
		name, err := str(meta, "name")
		if err != nil {
			return nil, err
		}
		ns, err := str(meta, "namespace")
		if err != nil {
			return nil, err
		}
		md := map[string]any{"name": name, "annotations": map[string]string{NotForThisDevice: recipients}}
		if ns != "" {
			md["namespace"] = ns
		}
		obj := map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": md}
		data := map[string]string{}
		for _, field := range []string{"data", "stringData"} {
			_, m := lookup(m, field)
			if m == nil || m.Kind != yaml.MappingNode {
				continue
			}
			for i := 0; i+1 < len(m.Content); i += 2 {
				sum := sha256.Sum256([]byte(m.Content[i+1].Value))
				data[m.Content[i].Value] = base64Std(sum[:12])
			}
		}
		obj["data"] = data
		b, _ := json.Marshal(obj)
		if i := m.Line - 1; i >= 0 && i < len(lines) {
			lines[i] = append(b, lineEnd(lines[i])...)
		}
	}
	return bytes.Join(lines, nil), nil
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// apply returns the file with d's splices made.
func (d *decryption) apply() []byte {
	out := slices.Clone(d.f.data)
	slices.SortFunc(d.splices, func(a, b splice) int { return b.start - a.start })
	for _, s := range d.splices {
		out = slices.Replace(out, s.start, s.end, []byte(s.text)...)
	}
	return out
}

// loadOrCreateKey returns the 32-byte key in path, creating it with mode
// 0600 (in a 0700 directory) when it does not exist. A key file that is
// readable by others is refused.
func loadOrCreateKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) != 32 {
			return nil, fmt.Errorf("%s: not a 32-byte key", path)
		}
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("%s: readable by others (mode %v): chmod 600 it", path, fi.Mode().Perm())
		}
		return b, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	b = make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(path, b); err != nil {
		return nil, err
	}
	// Another process may have raced this one: use what is on disk.
	got, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(got) != 32 {
		return nil, fmt.Errorf("%s: not a 32-byte key", path)
	}
	return got, nil
}

// writeFileAtomic writes data to path with mode 0600, in a directory of
// mode 0700, atomically. Callers check first that path does not exist.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return record.WriteFileAtomic(path, data, 0o600)
}

func base64Std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

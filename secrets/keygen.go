package secrets

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"filippo.io/age"
)

// Keygen makes the device's age identity in path (mode 0600, in a 0700
// directory) and returns its public key, the recipient to encrypt the
// device's secrets to. An existing identity is never replaced: its public
// key is returned with created false.
func Keygen(path string) (recipient string, created bool, err error) {
	if data, err := os.ReadFile(path); err == nil {
		ids, err := age.ParseIdentities(bytes.NewReader(data))
		if err != nil {
			return "", false, fmt.Errorf("age identity %s: %w", path, err)
		}
		x, ok := ids[0].(*age.X25519Identity)
		if !ok {
			return "", false, fmt.Errorf("age identity %s: not an X25519 identity", path)
		}
		return x.Recipient().String(), false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", false, fmt.Errorf("age identity: %w", err)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return "", false, err
	}
	content := fmt.Sprintf("# created: %s\n# public key: %s\n%s\n",
		time.Now().UTC().Format(time.RFC3339), id.Recipient(), id)
	if err := writeFileAtomic(path, []byte(content)); err != nil {
		return "", false, fmt.Errorf("age identity: %w", err)
	}
	// A concurrent keygen may have won: report the identity on disk.
	r, _, err := Keygen(path)
	return r, r == id.Recipient().String(), err
}

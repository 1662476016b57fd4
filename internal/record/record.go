// Package record keeps berth's small durable records under the state
// directory (the last applied revision, and later the last good one). Each
// record is a JSON file replaced atomically: written to a temporary file,
// synced, renamed over the old one, and the directory synced, so a power
// loss leaves either the old record or the new one, never a torn file.
package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Revision records one revision berth acted on.
type Revision struct {
	Commit string    `json:"commit"`
	Ref    string    `json:"ref,omitempty"`
	URL    string    `json:"url,omitempty"`
	Path   string    `json:"path,omitempty"`
	Time   time.Time `json:"time"`
}

// Names of the records.
const (
	LastApplied = "last-applied.json"
)

// Write stores v as JSON in dir/name atomically. A record that already
// holds exactly that is left as it is: no write and no sync, which on a
// device's flash are the costly part (a no-change apply writes the same
// waiting-objects record every time).
func Write(dir, name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("record %s: %w", name, err)
	}
	b = append(b, '\n')
	path := filepath.Join(dir, name)
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, b) {
		return nil
	}
	return WriteFileAtomic(path, b, 0o644)
}

// Read loads dir/name into v. A missing record is reported with ok=false
// and no error.
func Read(dir, name string, v any) (ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("record %s: %w", name, err)
	}
	return true, nil
}

// WriteFileAtomic replaces path with data: temporary file, fsync, rename,
// fsync of the directory.
func WriteFileAtomic(path string, data []byte, perm fs.FileMode) error {
	return replaceFile(path, data, perm, true)
}

// ReplaceFile replaces path with data through a temporary file and a
// rename, without syncing: for a file whose loss or damage at a power cut
// costs only time, such as a cache that checksums what it holds.
func ReplaceFile(path string, data []byte, perm fs.FileMode) error {
	return replaceFile(path, data, perm, false)
}

func replaceFile(path string, data []byte, perm fs.FileMode, sync bool) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if sync {
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if !sync {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

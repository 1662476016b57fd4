package schema

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"reflect"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"

	"berth.dev/berth/internal/record"
	"berth.dev/berth/reconcile"
)

// A Cache can be kept on disk between processes (ReadFile, WriteFile), so
// that a one-shot command validates only the YAML and JSON files that
// changed since the last one: a no-change apply of 50 pods spent about
// half of its CPU validating them again. The file is part of berth's state:
//
//   - It never holds a Secret or the data of a decrypted file: an entry that
//     loaded one stays in memory only.
//   - Each entry is written only if its encoding reads back exactly equal to
//     it (the model has pointers to zero values and maps whose absence
//     matters); anything else is validated again next time.
//   - It is bound to the binary that wrote it (its size and modification
//     time, its build) and to the embedded schema (in every key), so an
//     upgrade or a rebuild never uses another binary's verdicts.
//   - A checksum covers it, and it is at most maxDiskCache bytes: a torn,
//     damaged or foreign file is ignored, never trusted.
//
// The cache holds the entries of the last Load only, so the file follows
// the repository's size.
const maxDiskCache = 64 << 20

// diskCacheMagic starts the file; the version changes with the encoding.
const diskCacheMagic = "berth-validation-cache 1"

// buildStamp identifies the running binary: a rebuild or an upgrade
// changes it. It is empty when the binary cannot be identified, and then
// nothing is kept on disk.
var buildStamp = sync.OnceValue(func() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	st, err := os.Stat(exe)
	if err != nil {
		return ""
	}
	h := sha256.New()
	writeField(h, runtime.Version())
	writeField(h, strconv.FormatInt(st.Size(), 10))
	writeField(h, strconv.FormatInt(st.ModTime().UnixNano(), 10))
	if bi, ok := debug.ReadBuildInfo(); ok {
		writeField(h, bi.Main.Version)
		for _, s := range bi.Settings {
			writeField(h, s.Key+"="+s.Value)
		}
	}
	h.Write(schemaKey())
	return hex.EncodeToString(h.Sum(nil))
})

// diskEntry is a cache entry as kept on disk.
type diskEntry struct {
	Key    string       `json:"key"`
	Loaded []diskLoaded `json:"loaded"`
	Diags  []Diagnostic `json:"diags,omitempty"`
}

// diskLoaded is a loaded object with every part of the model but a
// Secret's data, as the cache file keeps it and the CUE sandbox's child
// sends it (sandboxLoaded adds the Secret): the JSON encoding of
// reconcile.Object leaves out the kind's spec.
type diskLoaded struct {
	TypeMeta    reconcile.TypeMeta         `json:"typeMeta"`
	Metadata    reconcile.ObjectMeta       `json:"metadata"`
	Source      reconcile.Position         `json:"source"`
	Pod         *reconcile.PodSpec         `json:"pod,omitempty"`
	Deployment  *reconcile.DeploymentSpec  `json:"deployment,omitempty"`
	ReplicaSet  *reconcile.ReplicaSetSpec  `json:"replicaSet,omitempty"`
	DaemonSet   *reconcile.DaemonSetSpec   `json:"daemonSet,omitempty"`
	StatefulSet *reconcile.StatefulSetSpec `json:"statefulSet,omitempty"`
	Job         *reconcile.JobSpec         `json:"job,omitempty"`
	CronJob     *reconcile.CronJobSpec     `json:"cronJob,omitempty"`
	ConfigMap   *reconcile.ConfigMapData   `json:"configMap,omitempty"`
	OK          bool                       `json:"ok"`
	Facts       facts                      `json:"facts"`
}

// toDiskLoaded and fromDiskLoaded convert a loaded object; a Secret's
// data is left out.
func toDiskLoaded(lo loaded) diskLoaded {
	o := lo.Obj
	return diskLoaded{TypeMeta: o.TypeMeta, Metadata: o.Metadata, Source: o.Source,
		Pod: o.Pod, Deployment: o.Deployment, ReplicaSet: o.ReplicaSet, DaemonSet: o.DaemonSet,
		StatefulSet: o.StatefulSet, Job: o.Job, CronJob: o.CronJob, ConfigMap: o.ConfigMap,
		OK: lo.OK, Facts: lo.Facts}
}

func fromDiskLoaded(dl diskLoaded) loaded {
	return loaded{OK: dl.OK, Facts: dl.Facts, Obj: reconcile.Object{
		TypeMeta: dl.TypeMeta, Metadata: dl.Metadata, Source: dl.Source,
		Pod: dl.Pod, Deployment: dl.Deployment, ReplicaSet: dl.ReplicaSet, DaemonSet: dl.DaemonSet,
		StatefulSet: dl.StatefulSet, Job: dl.Job, CronJob: dl.CronJob, ConfigMap: dl.ConfigMap}}
}

func toDisk(k key, e *cacheEntry) diskEntry {
	d := diskEntry{Key: hex.EncodeToString(k[:]), Loaded: make([]diskLoaded, len(e.loaded)), Diags: e.diags}
	for i, lo := range e.loaded {
		d.Loaded[i] = toDiskLoaded(lo)
	}
	return d
}

func fromDisk(d diskEntry) (key, *cacheEntry, bool) {
	var k key
	if b, err := hex.DecodeString(d.Key); err != nil || len(b) != len(k) {
		return k, nil, false
	} else {
		copy(k[:], b)
	}
	e := &cacheEntry{loaded: make([]loaded, len(d.Loaded)), diags: d.Diags, disk: true}
	for i, dl := range d.Loaded {
		e.loaded[i] = fromDiskLoaded(dl)
	}
	return k, e, true
}

// holdsSecret tells whether ls has a Secret, valid or not.
func holdsSecret(ls []loaded) bool {
	for _, lo := range ls {
		if lo.Obj.Kind == "Secret" || lo.Obj.Secret != nil {
			return true
		}
	}
	return false
}

// ReadFile adds the entries kept in the file at path, written by WriteFile
// of this binary. A missing file is no error; a file that is too large,
// damaged or written by another binary is ignored (and replaced by the
// next WriteFile).
func (c *Cache) ReadFile(path string) error {
	stamp := buildStamp()
	if stamp == "" {
		return nil
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxDiskCache+1))
	if err != nil {
		return err
	}
	if len(data) > maxDiskCache {
		return nil
	}
	header, payload, ok := bytes.Cut(data, []byte{'\n'})
	sum := sha256.Sum256(payload)
	if !ok || string(header) != diskCacheMagic+" "+stamp+" "+hex.EncodeToString(sum[:]) {
		return nil
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(payload, &raws); err != nil {
		return nil
	}
	entries := make(map[key]*cacheEntry, len(raws))
	for _, raw := range raws {
		var d diskEntry
		if err := json.Unmarshal(raw, &d); err != nil {
			return nil
		}
		k, e, ok := fromDisk(d)
		if !ok {
			return nil
		}
		e.raw = raw
		entries[k] = e
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range entries {
		if _, ok := c.entries[k]; !ok {
			c.entries[k] = e
		}
	}
	c.onDisk = make(map[key]bool, len(entries))
	for k := range entries {
		c.onDisk[k] = true
	}
	return nil
}

// WriteFile keeps the entries of the last Load that may be kept on disk in
// the file at path (mode 0600), replacing it atomically. It writes nothing
// when the file already holds exactly those entries.
func (c *Cache) WriteFile(path string) error {
	stamp := buildStamp()
	if stamp == "" {
		return nil
	}
	c.mu.Lock()
	keys := make([]key, 0, len(c.entries))
	for k, e := range c.entries {
		if e.disk {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b key) int { return bytes.Compare(a[:], b[:]) })
	raws := make([]json.RawMessage, 0, len(keys))
	written := make(map[key]bool, len(keys))
	changed := false
	for _, k := range keys {
		e := c.entries[k]
		if e.raw == nil {
			e.raw = encodeEntry(k, e)
		}
		if len(e.raw) == 0 {
			continue
		}
		changed = changed || !c.onDisk[k]
		raws = append(raws, e.raw)
		written[k] = true
	}
	if !changed && len(written) == len(c.onDisk) {
		c.mu.Unlock()
		return nil
	}
	c.onDisk = written
	c.mu.Unlock()
	payload, err := json.Marshal(raws)
	if err != nil {
		return err
	}
	if len(payload) > maxDiskCache-len(diskCacheMagic)-200 {
		return nil
	}
	sum := sha256.Sum256(payload)
	header := diskCacheMagic + " " + stamp + " " + hex.EncodeToString(sum[:]) + "\n"
	// Not synced: a torn file fails its checksum and is ignored.
	return record.ReplaceFile(path, append([]byte(header), payload...), 0o600)
}

// encodeEntry encodes e, or returns an empty encoding if it does not read
// back exactly equal.
func encodeEntry(k key, e *cacheEntry) json.RawMessage {
	raw, err := json.Marshal(toDisk(k, e))
	if err != nil {
		return json.RawMessage{}
	}
	var d diskEntry
	if err := json.Unmarshal(raw, &d); err != nil {
		return json.RawMessage{}
	}
	k2, back, ok := fromDisk(d)
	if !ok || k2 != k || !sameList(back.loaded, e.loaded) || !sameList(back.diags, e.diags) {
		return json.RawMessage{}
	}
	return raw
}

// sameList tells whether a and b are deeply equal, an empty list being
// the same as none.
func sameList[T any](a, b []T) bool {
	return len(a) == 0 && len(b) == 0 || reflect.DeepEqual(a, b)
}

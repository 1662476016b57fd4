package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"berth.dev/berth/internal/record"
	"berth.dev/berth/source"
)

// Names of the agent's records under the state directory. The last applied
// revision shares record.LastApplied with "berth apply".
const (
	RecordLastFetched = "last-fetched.json"
	RecordLastGood    = "last-good.json"
	RecordBad         = "bad-revisions.json"
	RecordControl     = "agent-control.json"
)

// BadRevision is a revision the agent rolled back from or refused for
// good. It is not tried again until a different commit arrives.
type BadRevision struct {
	Commit string    `json:"commit"`
	Reason string    `json:"reason"`
	Time   time.Time `json:"time"`
}

// Control is what the operator set with berth suspend/resume and
// berth pin/unpin. It is persisted, so it survives restarts.
type Control struct {
	// Suspended stops the agent from changing anything on the host.
	Suspended bool `json:"suspended,omitempty"`
	// Pin is a commit (or ref) the agent applies instead of the fetched
	// head.
	Pin  string    `json:"pin,omitempty"`
	Time time.Time `json:"time,omitzero"`
}

// ReadControl reads the control record of stateDir (zero when absent).
func ReadControl(stateDir string) (Control, error) {
	var c Control
	if _, err := record.Read(stateDir, RecordControl, &c); err != nil {
		return Control{}, fmt.Errorf("read control record: %w", err)
	}
	return c, nil
}

// WriteControl replaces the control record of stateDir atomically.
func WriteControl(stateDir string, c Control) error {
	c.Time = time.Now().UTC()
	if err := record.Write(stateDir, RecordControl, c); err != nil {
		return fmt.Errorf("write control record: %w", err)
	}
	return nil
}

// ReadBad returns the bad revisions recorded in stateDir.
func ReadBad(stateDir string) ([]BadRevision, error) {
	var bad []BadRevision
	if _, err := record.Read(stateDir, RecordBad, &bad); err != nil {
		return nil, fmt.Errorf("read bad revisions: %w", err)
	}
	return bad, nil
}

// maxBad bounds the bad-revision record; the oldest entries go first.
const maxBad = 50

func writeBad(stateDir string, bad []BadRevision) error {
	if len(bad) > maxBad {
		bad = bad[len(bad)-maxBad:]
	}
	if bad == nil {
		bad = []BadRevision{}
	}
	return record.Write(stateDir, RecordBad, bad)
}

func readRevision(stateDir, name string) (*record.Revision, error) {
	var r record.Revision
	ok, err := record.Read(stateDir, name, &r)
	if err != nil || !ok {
		return nil, err
	}
	return &r, nil
}

// GoodFiles is the directory under the state directory that keeps the
// files of the last good revision of a source that keeps no history the
// agent can read without it (a local directory or repository, which may
// be missing when the agent starts): revision.json and files/.
const GoodFiles = "last-good-files"

// keptRevision is revision.json of GoodFiles.
type keptRevision struct {
	Commit  string    `json:"commit"`
	Ref     string    `json:"ref,omitempty"`
	URL     string    `json:"url,omitempty"`
	Path    string    `json:"path,omitempty"`
	Time    time.Time `json:"time"`
	Message string    `json:"message,omitempty"`
	Author  string    `json:"author,omitempty"`
}

// writeGoodFiles replaces GoodFiles with rev's files: written beside it,
// synced, then swapped in by renames, so a crash leaves the old copy or
// the new one (and temporary directories the next write removes).
func writeGoodFiles(stateDir string, rev *source.Revision) error {
	old, _ := filepath.Glob(filepath.Join(stateDir, "."+GoodFiles+".*"))
	for _, p := range old {
		_ = os.RemoveAll(p)
	}
	tmp, err := os.MkdirTemp(stateDir, "."+GoodFiles+".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // gone after a successful swap
	files := filepath.Join(tmp, "files")
	err = fs.WalkDir(rev.Files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(files, p), 0o700)
		}
		b, err := fs.ReadFile(rev.Files, p)
		if err != nil {
			return err
		}
		return writeSynced(filepath.Join(files, p), b)
	})
	if err != nil {
		return err
	}
	meta := keptRevision{Commit: rev.Commit, Ref: rev.Ref, URL: rev.URL, Path: rev.Path, Time: rev.Time, Message: rev.Message, Author: rev.Author}
	if err := record.Write(tmp, "revision.json", meta); err != nil {
		return err
	}
	final := filepath.Join(stateDir, GoodFiles)
	if _, err := os.Stat(final); err == nil {
		if err := os.Rename(final, tmp+".old"); err != nil {
			return err
		}
		defer os.RemoveAll(tmp + ".old")
	}
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	return syncDir(stateDir)
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// readGoodFiles returns the revision commit kept in GoodFiles, read with
// the source's own bounds, or an error when it is not the one kept.
func readGoodFiles(ctx context.Context, stateDir, commit string) (*source.Revision, error) {
	dir := filepath.Join(stateDir, GoodFiles)
	var meta keptRevision
	ok, err := record.Read(dir, "revision.json", &meta)
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return nil, fmt.Errorf("no files of revision %s kept", source.ShortCommit(commit))
	case meta.Commit != commit:
		return nil, fmt.Errorf("the files kept are of revision %s, not %s", source.ShortCommit(meta.Commit), source.ShortCommit(commit))
	}
	src, err := source.OpenContext(ctx, source.Options{URL: filepath.Join(dir, "files"), ForceDir: true})
	if err != nil {
		return nil, err
	}
	files, _, err := src.Fetch(ctx)
	if err != nil {
		return nil, err
	}
	return &source.Revision{Commit: meta.Commit, Ref: meta.Ref, URL: meta.URL, Path: meta.Path, Time: meta.Time,
		Message: meta.Message, Author: meta.Author, Files: files.Files}, nil
}

// keepGoodFiles keeps rev's files in GoodFiles when the source cannot
// give them back itself: a local directory keeps no history, and a local
// directory or repository may be missing when the agent starts again. A
// remote repository's cache holds its commits already.
func (a *Agent) keepGoodFiles(rev *source.Revision) {
	k, ok := a.cfg.Source.(interface{ Kind() source.Kind })
	if !ok || k.Kind() == source.KindRemote || rev.Files == nil {
		return
	}
	if err := writeGoodFiles(a.cfg.StateDir, rev); err != nil {
		a.log.Error("cannot keep the files of the last good revision", "error", err)
	}
}

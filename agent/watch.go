package agent

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/hashicorp/go-hclog"
)

// DefaultDebounce is how long a directory must be quiet after a change
// before the watcher rings: an editor's save or a git checkout touches
// many files at once.
const DefaultDebounce = 200 * time.Millisecond

// watchReady, when set (by tests), is called once Watch watches dir;
// watchWaiting once it waits for a missing dir to appear.
var watchReady, watchWaiting func(dir string)

// Watch rings ring once the tree under dir has been quiet for debounce
// after a change, until ctx ends. For a Git working tree (dir/.git
// exists) it watches the repository's HEAD and refs, so a commit rings
// and uncommitted edits do not; for any other directory it watches every
// subdirectory (new ones included) and ignores .git.
func Watch(ctx context.Context, dir string, debounce time.Duration, ring func(), log hclog.Logger) error {
	if debounce <= 0 {
		debounce = DefaultDebounce
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	if appeared, err := waitFor(ctx, dir, log); err != nil || ctx.Err() != nil {
		return err
	} else if appeared {
		ring()
	}
	gitDir := filepath.Join(dir, ".git")
	isRepo := false
	if fi, err := os.Stat(gitDir); err == nil && fi.IsDir() {
		isRepo = true
	} else if _, err := os.Stat(filepath.Join(dir, "refs")); err == nil {
		if _, err := os.Stat(filepath.Join(dir, "HEAD")); err == nil {
			isRepo, gitDir = true, dir // a bare repository
		}
	}
	addTree := func(root string, skipGit bool) error {
		return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil // vanished meanwhile
			}
			if !d.IsDir() {
				return nil
			}
			if skipGit && d.Name() == ".git" {
				return filepath.SkipDir
			}
			if err := w.Add(p); err != nil {
				log.Warn("cannot watch directory", "dir", p, "error", err)
			}
			return nil
		})
	}
	if isRepo {
		if err := w.Add(gitDir); err != nil {
			return err
		}
		if err := addTree(filepath.Join(gitDir, "refs"), false); err != nil {
			return err
		}
	} else if err := addTree(dir, true); err != nil {
		return err
	}
	log.Debug("watching for changes", "dir", dir, "git", isRepo)
	if watchReady != nil {
		watchReady(dir)
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Has(fsnotify.Create) {
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
					_ = addTree(ev.Name, !isRepo)
				}
			}
			if isRepo && filepath.Dir(ev.Name) == gitDir {
				// Only HEAD and packed-refs matter at the top of .git.
				if b := filepath.Base(ev.Name); b != "HEAD" && b != "packed-refs" {
					continue
				}
			}
			timer.Reset(debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			log.Warn("watcher error", "error", err)
		case <-timer.C:
			ring()
		}
	}
}

// waitFor returns once dir exists, watching the nearest of its parents
// that does, and reports whether it had to wait: a repository directory
// missing when the agent starts (a disk mounted later, a checkout not yet
// made) rings as soon as it appears. Its watcher is its own, so the
// parents' events do not reach the watch of dir.
func waitFor(ctx context.Context, dir string, log hclog.Logger) (bool, error) {
	if _, err := os.Stat(dir); err == nil {
		return false, nil
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return false, err
	}
	defer w.Close()
	waited := false
	for {
		if _, err := os.Stat(dir); err == nil {
			return waited, nil
		}
		parent := filepath.Dir(dir)
		for {
			if _, err := os.Stat(parent); err == nil || parent == filepath.Dir(parent) {
				break
			}
			parent = filepath.Dir(parent)
		}
		if err := w.Add(parent); err != nil {
			return waited, err
		}
		if !waited {
			log.Warn("the repository directory does not exist; waiting for it", "dir", dir, "watching", parent)
			if watchWaiting != nil {
				watchWaiting(dir)
			}
		}
		waited = true
		// Check again now the watch is in place: it may have appeared
		// meanwhile.
		if _, err := os.Stat(dir); err != nil {
			select {
			case <-ctx.Done():
				return waited, nil
			case <-w.Events:
			case err := <-w.Errors:
				log.Warn("watcher error", "error", err)
			}
		}
		_ = w.Remove(parent)
	}
}

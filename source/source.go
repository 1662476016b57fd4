package source

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/hashicorp/go-hclog"
)

// Kind is how a Source reads its repository.
type Kind int

// Kinds of Source.
const (
	// KindRemote fetches a remote repository into a cache.
	KindRemote Kind = iota + 1
	// KindLocalRepo reads the commits of a local Git repository in place.
	KindLocalRepo
	// KindDir reads the files of a local directory.
	KindDir
)

// String returns "remote", "local-repo" or "dir".
func (k Kind) String() string {
	switch k {
	case KindRemote:
		return "remote"
	case KindLocalRepo:
		return "local-repo"
	case KindDir:
		return "dir"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Source reads revisions of one repository, ref and path. Its methods are
// safe for concurrent use; fetches are serialized.
type Source struct {
	opts Options
	kind Kind
	url  string // display form
	dir  string // local directory, for KindLocalRepo and KindDir
	git  *gitBackend
	red  *redactor
	log  hclog.Logger

	mu   sync.Mutex
	last *Revision
}

// Open checks opts and prepares a Source. For a remote repository it opens
// or creates the cache under Options.CacheDir; it does no network I/O, which
// Fetch does. A local path that is a Git repository (the directory holding
// .git, or a bare repository) becomes a KindLocalRepo, read at its
// committed HEAD (or Options.Ref) and ignoring uncommitted changes, unless
// Options.ForceDir is set; any other directory is a KindDir.
func Open(opts Options) (*Source, error) {
	return OpenContext(context.Background(), opts)
}

// OpenContext is Open with a context bounding the wait for the cache lock.
func OpenContext(ctx context.Context, opts Options) (*Source, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	loc, err := parseLocation(opts.URL)
	if err != nil {
		return nil, err
	}
	s := &Source{opts: opts, url: loc.display}
	s.red = newRedactor(opts.URL, loc.display, opts.Auth, loc)
	s.log = opts.Logger.Named("source").With("url", loc.display)

	if loc.kind == locRemote {
		s.kind = KindRemote
		s.git, err = openRemote(ctx, loc, &s.opts, s.log)
		if err != nil {
			return nil, s.wrap("open", err)
		}
		return s, nil
	}

	dir, err := filepath.Abs(loc.path)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	s.dir = dir
	if !loc.explicitFile {
		s.url = dir
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("source: %s is not a directory", dir)
	}
	repoKind := gitRepoKind(dir)
	switch {
	case repoKind == notRepo && loc.explicitFile:
		return nil, fmt.Errorf("source: %s is not a Git repository", s.url)
	case repoKind == notRepo || opts.ForceDir:
		if opts.Ref != "" {
			return nil, fmt.Errorf("source: ref %q given for %s, which is read as a plain directory", opts.Ref, s.url)
		}
		s.kind = KindDir
	default:
		s.kind = KindLocalRepo
		s.git, err = openLocal(dir, &s.opts, s.log)
		if err != nil {
			return nil, s.wrap("open", err)
		}
	}
	return s, nil
}

type repoKind int

const (
	notRepo repoKind = iota
	workTree
	bareRepo
)

// gitRepoKind tells whether dir itself is a Git repository. Parent
// directories are not searched: a subdirectory of a working tree is a
// plain directory.
func gitRepoKind(dir string) repoKind {
	dotGit := filepath.Join(dir, ".git")
	if fi, err := os.Stat(dotGit); err == nil {
		if !fi.IsDir() {
			// A linked worktree or submodule: "gitdir: <path>".
			if b, err := os.ReadFile(dotGit); err == nil && strings.HasPrefix(string(b), "gitdir:") {
				return workTree
			}
			return notRepo
		}
		if _, err := os.Stat(filepath.Join(dotGit, "HEAD")); err == nil {
			return workTree
		}
		return notRepo
	}
	for _, name := range []string{"HEAD", "objects", "refs"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return notRepo
		}
	}
	return bareRepo
}

// Kind says how the Source reads its repository.
func (s *Source) Kind() Kind { return s.kind }

// URL returns the repository for display, without user info.
func (s *Source) URL() string { return s.url }

// LocalDir returns the directory of a KindDir or KindLocalRepo source (for
// a watcher), and "" for a remote one.
func (s *Source) LocalDir() string { return s.dir }

// Fetch brings the Source up to date and returns a snapshot of the ref's
// commit under Options.Path. For a remote it first fetches into the cache
// (the first Fetch into an empty cache clones); a force-pushed branch
// replaces what the cache held. changed reports whether the commit (or,
// for a directory, the content digest) differs from the one the previous
// Fetch of this Source returned; the first Fetch reports true. When nothing
// changed, the previous *Revision is returned again.
//
// Errors never contain credentials. Content the snapshot refuses comes as a
// *ContentError; see the Err* values for the other cases.
func (s *Source) Fetch(ctx context.Context) (rev *Revision, changed bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.kind {
	case KindDir:
		rev, err = s.readDir()
	default:
		var commit *object.Commit
		var ref string
		commit, ref, err = s.git.update(ctx)
		if err == nil {
			if s.last != nil && s.last.Commit == commit.Hash.String() {
				s.log.Debug("revision unchanged", "commit", s.last.ShortCommit())
				return s.last, false, nil
			}
			rev, err = s.readCommit(commit, ref)
		}
	}
	if err != nil {
		return nil, false, s.wrap("fetch", err)
	}
	if s.last != nil && s.last.Commit == rev.Commit {
		s.log.Debug("revision unchanged", "commit", rev.ShortCommit())
		return s.last, false, nil
	}
	s.log.Info("new revision", "commit", rev.ShortCommit(), "ref", rev.Ref)
	s.last = rev
	return rev, true, nil
}

// Revision returns a snapshot of rev (a ref or a full or abbreviated commit
// hash, resolved like Options.Ref) as it is in the cache or local
// repository, without contacting the remote: for example to compare with a
// revision applied earlier. It does not change what Fetch compares against.
// A directory source has only its current content and returns an error.
func (s *Source) Revision(ctx context.Context, rev string) (*Revision, error) {
	if s.kind == KindDir {
		return nil, fmt.Errorf("source: %s is a directory and keeps no revisions", s.url)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.git.lockPath != "" {
		unlock, err := lockFile(ctx, s.git.lockPath)
		if err != nil {
			return nil, s.wrap("read", err)
		}
		defer unlock()
	}
	commit, ref, err := s.git.resolve(strings.TrimSpace(rev))
	if err != nil {
		return nil, s.wrap("read", err)
	}
	r, err := s.readCommit(commit, ref)
	if err != nil {
		return nil, s.wrap("read", err)
	}
	return r, nil
}

func (s *Source) limits() limits {
	return limits{maxFile: s.opts.MaxFileSize, maxTotal: s.opts.MaxTotalSize, maxFiles: s.opts.MaxFiles,
		maxDepth: s.opts.MaxDepth, maxEntries: s.opts.MaxDirEntries}
}

func (s *Source) warn(msg string, args ...any) { s.log.Warn(msg, args...) }

// readCommit snapshots commit's tree under Options.Path.
func (s *Source) readCommit(commit *object.Commit, ref string) (*Revision, error) {
	tree, err := commit.Tree()
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", commit.Hash, err)
	}
	when := commit.Committer.When
	files, err := snapshot(newGitTree(s.git.repo, tree), s.opts.Path, s.limits(), when, s.warn)
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", commit.Hash, err)
	}
	return &Revision{
		Commit:  commit.Hash.String(),
		Ref:     ref,
		URL:     s.url,
		Path:    s.opts.Path,
		Time:    when,
		Message: strings.TrimRight(commit.Message, "\n"),
		Author:  fmt.Sprintf("%s <%s>", commit.Author.Name, commit.Author.Email),
		Files:   files,
	}, nil
}

// readDir snapshots the directory under Options.Path.
func (s *Source) readDir() (*Revision, error) {
	root, err := os.OpenRoot(s.dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	now := time.Now().UTC()
	files, err := snapshot(&diskTree{root: root}, s.opts.Path, s.limits(), now, s.warn)
	if err != nil {
		return nil, err
	}
	return &Revision{
		Commit: digest(files),
		URL:    s.url,
		Path:   s.opts.Path,
		Time:   now,
		Files:  files,
	}, nil
}

// wrap prefixes err with the operation and the display URL and removes
// every secret from its text.
func (s *Source) wrap(op string, err error) error {
	var ce *ContentError
	if errors.As(err, &ce) {
		// Keep a ContentError reachable for callers that classify.
		return fmt.Errorf("%s %s: %w", op, s.url, err)
	}
	return s.red.wrap(fmt.Errorf("%s %s: %w", op, s.url, err))
}

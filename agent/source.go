package agent

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"

	"berth.dev/berth/source"
)

// Repository is the agent's Source: a *source.Source opened when the agent
// starts, or, when its local directory does not exist yet, at the first
// fetch that finds it. Until then each fetch fails (and the agent backs
// off and runs its last good revision), so a directory that is missing
// at boot (an unmounted disk, a checkout not yet made) never keeps the
// agent from starting.
type Repository struct {
	opts source.Options
	dir  string // the local directory waited for; "" once opened

	mu  sync.Mutex
	src *source.Source
}

// OpenRepository opens the repository of opts. Only a local directory
// that does not exist is tolerated; every other error (a bad URL, a
// directory that is a file, a ref given for a plain directory) is
// returned, as source.OpenContext returns it.
func OpenRepository(ctx context.Context, opts source.Options) (*Repository, error) {
	src, err := source.OpenContext(ctx, opts)
	switch {
	case err == nil:
		return &Repository{opts: opts, src: src}, nil
	case errors.Is(err, fs.ErrNotExist):
		dir, _ := filepath.Abs(strings.TrimPrefix(strings.TrimSpace(opts.URL), "file://"))
		return &Repository{opts: opts, dir: dir}, nil
	}
	return nil, err
}

// Open returns the opened source, opening it now if it was missing.
func (r *Repository) Open(ctx context.Context) (*source.Source, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.src == nil {
		src, err := source.OpenContext(ctx, r.opts)
		if err != nil {
			return nil, err
		}
		r.src = src
	}
	return r.src, nil
}

// opened returns the source if it is open.
func (r *Repository) opened() *source.Source {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.src
}

// Fetch opens the source if needed and fetches it.
func (r *Repository) Fetch(ctx context.Context) (*source.Revision, bool, error) {
	src, err := r.Open(ctx)
	if err != nil {
		return nil, false, err
	}
	return src.Fetch(ctx)
}

// Revision reads a revision from the opened source's cache.
func (r *Repository) Revision(ctx context.Context, rev string) (*source.Revision, error) {
	src, err := r.Open(ctx)
	if err != nil {
		return nil, err
	}
	return src.Revision(ctx, rev)
}

// IsAncestor reports whether older is an ancestor of newer.
func (r *Repository) IsAncestor(ctx context.Context, older, newer string) (bool, error) {
	src, err := r.Open(ctx)
	if err != nil {
		return false, err
	}
	return src.IsAncestor(ctx, older, newer)
}

// Verify checks rev's signatures as source.Source.Verify does.
func (r *Repository) Verify(ctx context.Context, rev *source.Revision, mode source.VerifyMode, keys *source.TrustedKeys) (string, error) {
	src, err := r.Open(ctx)
	if err != nil {
		return "", err
	}
	return src.Verify(ctx, rev, mode, keys)
}

// URL is the repository without credentials.
func (r *Repository) URL() string {
	if src := r.opened(); src != nil {
		return src.URL()
	}
	return r.dir
}

// Kind is how the source reads its repository; 0 while a missing local
// directory has not been opened.
func (r *Repository) Kind() source.Kind {
	if src := r.opened(); src != nil {
		return src.Kind()
	}
	return 0
}

// LocalDir is the local directory of the repository (a missing one
// included), "" for a remote one.
func (r *Repository) LocalDir() string {
	if src := r.opened(); src != nil {
		return src.LocalDir()
	}
	return r.dir
}

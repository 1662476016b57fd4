package source

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/hashicorp/go-hclog"
)

// mirror is a fallback address of the remote repository.
type mirror struct {
	url     string // for go-git
	display string // without credentials
	auth    transport.AuthMethod
}

// openMirrors prepares Options.Mirrors: each is a remote URL (any remote
// scheme), with credentials chosen for its own transport.
func openMirrors(o *Options, log hclog.Logger) ([]mirror, error) {
	var out []mirror
	for _, raw := range o.Mirrors {
		loc, err := parseLocation(strings.TrimSpace(raw))
		if err != nil {
			return nil, err
		}
		if loc.kind != locRemote {
			return nil, fmt.Errorf("source: mirror %q is not a remote URL", loc.display)
		}
		auth, err := authFor(loc, o.Auth, log)
		if err != nil {
			return nil, err
		}
		out = append(out, mirror{url: loc.remote, display: loc.display, auth: auth})
	}
	return out, nil
}

// fetchWithMirrors fetches from the primary URL and, when that fails for a
// reason a mirror might not have (network, server), from each mirror in
// turn. Authentication failures and missing refs are not retried
// elsewhere: they are the answer.
func (b *gitBackend) fetchWithMirrors(ctx context.Context) error {
	err := b.fetch(ctx)
	if err == nil || len(b.mirrors) == 0 || ctx.Err() != nil {
		return err
	}
	errs := []error{err}
	for _, m := range b.mirrors {
		if errors.Is(err, ErrAuth) || errors.Is(err, ErrRefNotFound) || errors.Is(err, ErrEmptyRepository) {
			break
		}
		b.log.Warn("fetch failed; trying a mirror", "mirror", m.display, "error", err)
		err = b.fetchFrom(ctx, m)
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("mirror %s: %w", m.display, err))
	}
	return errors.Join(errs...)
}

// fetchFrom fetches from one mirror into the same refs as the primary.
func (b *gitBackend) fetchFrom(ctx context.Context, m mirror) error {
	r := git.NewRemote(b.repo.Storer, &config.RemoteConfig{Name: remoteName, URLs: []string{m.url}, Fetch: b.refspecs})
	saved := b.auth
	b.auth = m.auth
	defer func() { b.auth = saved }()
	return b.fetchRemote(ctx, r)
}

// shallowSpecs narrows a fetch to the one branch the ref follows (head
// names the remote's default branch when the ref is empty), for
// Options.Shallow. Other refs keep the full refspecs.
func (b *gitBackend) shallowSpecs(head *plumbing.Reference) []config.RefSpec {
	branch := strings.TrimPrefix(b.ref, "refs/heads/")
	switch {
	case b.ref == "" || b.ref == "HEAD":
		if head == nil {
			return b.refspecs
		}
		branch = strings.TrimPrefix(head.Target().String(), remoteBranches)
	case strings.HasPrefix(b.ref, "refs/") && !strings.HasPrefix(b.ref, "refs/heads/"):
		return b.refspecs
	}
	return []config.RefSpec{config.RefSpec("+refs/heads/" + branch + ":" + remoteBranches + branch)}
}

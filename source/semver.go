package source

import (
	"fmt"
	"strings"

	"github.com/Masterminds/semver/v3"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// semverRange returns the constraint a ref spells, when it is a semantic
// version range such as ">=1.2.0 <2.0.0", "~1.4" or "1.x" rather than a
// branch, tag or commit: it must contain one of the range operators
// (< > = ~ ^ * x X ||, or a space) and parse as a constraint.
func semverRange(ref string) (*semver.Constraints, bool) {
	if ref == "" || strings.HasPrefix(ref, "refs/") {
		return nil, false
	}
	if !strings.ContainsAny(ref, "<>=~^* |") && !strings.Contains(ref, ".x") && !strings.Contains(ref, ".X") {
		return nil, false
	}
	c, err := semver.NewConstraint(ref)
	if err != nil {
		return nil, false
	}
	return c, true
}

// resolveRange picks the highest tag whose name (with or without a
// leading "v") is a semantic version inside c. Pre-releases count only
// when the range names one, as Masterminds/semver decides.
func (b *gitBackend) resolveRange(ref string, c *semver.Constraints) (*object.Commit, string, error) {
	iter, err := b.repo.Tags()
	if err != nil {
		return nil, "", fmt.Errorf("list tags: %w", err)
	}
	var best *semver.Version
	var bestRef *plumbing.Reference
	err = iter.ForEach(func(r *plumbing.Reference) error {
		v, err := semver.NewVersion(r.Name().Short())
		if err != nil || !c.Check(v) {
			return nil
		}
		if best == nil || v.GreaterThan(best) {
			best, bestRef = v, r
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("list tags: %w", err)
	}
	if bestRef == nil {
		return nil, "", fmt.Errorf("no tag matches the range %q: %w", ref, ErrRefNotFound)
	}
	commit, err := b.peel(bestRef.Hash())
	if err != nil {
		return nil, "", fmt.Errorf("tag %s: %w", bestRef.Name().Short(), err)
	}
	return commit, bestRef.Name().String(), nil
}

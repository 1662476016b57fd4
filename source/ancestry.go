package source

import (
	"context"
	"fmt"

	"github.com/go-git/go-git/v5/plumbing"
)

// IsAncestor reports whether commit older is an ancestor of (or equal to)
// commit newer, from the cache or local repository: false means history
// was rewritten between them, as a force-push does. Both must be full
// hashes of commits the cache holds.
func (s *Source) IsAncestor(ctx context.Context, older, newer string) (bool, error) {
	if s.kind == KindDir {
		return false, fmt.Errorf("source: %s is a directory and keeps no history", s.url)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o, err := s.git.repo.CommitObject(plumbing.NewHash(older))
	if err != nil {
		return false, fmt.Errorf("commit %s: %w", older, err)
	}
	n, err := s.git.repo.CommitObject(plumbing.NewHash(newer))
	if err != nil {
		return false, fmt.Errorf("commit %s: %w", newer, err)
	}
	return o.IsAncestor(n)
}

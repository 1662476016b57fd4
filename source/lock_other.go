//go:build !unix

package source

import "context"

// lockFile is a no-op where flock is not available; one process per cache
// directory is then the caller's business.
func lockFile(context.Context, string) (func(), error) { return func() {}, nil }

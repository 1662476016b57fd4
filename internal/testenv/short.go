package testenv

import "testing"

// skipShort skips a test that needs root or the private containerd when the
// tests run with -short (make test-unit): those are the tests that need
// neither. Without -short such a test runs, and fails loudly when the
// machine cannot run it.
func skipShort(tb testing.TB) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("needs root and containerd: skipped by -short (make test-unit); run make test")
	}
}

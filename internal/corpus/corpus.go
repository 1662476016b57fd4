// Package corpus finds the shared conformance corpora for tests: manifests
// from the Kubernetes website and from well-known projects, kept beside the
// repository (../shared/conformance), not in it.
//
// A fresh clone has no ../shared: the tests that read a corpus then skip,
// naming the environment variable that points at it, unless
// BERTH_CONFORMANCE=required (as CI sets), where a missing corpus fails them.
package corpus

import (
	"os"
	"path/filepath"
	"testing"
)

// A Corpus is one shared set of manifests.
type Corpus struct {
	// Env names the environment variable that points at the corpus.
	Env string
	// Beside is its directory relative to the parent of the module root,
	// used when Env is unset.
	Beside string
}

var (
	// K8sExamples is the Kubernetes website's example manifests.
	K8sExamples = Corpus{Env: "BERTH_K8S_EXAMPLES", Beside: "shared/conformance/k8s-examples"}
	// RealWorld is manifests from well-known projects (its SOURCES.md
	// names them).
	RealWorld = Corpus{Env: "BERTH_REAL_WORLD", Beside: "shared/conformance/real-world"}
)

// RequiredEnv makes a missing corpus a failure when set to "required".
const RequiredEnv = "BERTH_CONFORMANCE"

// Dir returns the corpus's directory. When it is missing, the test is
// skipped with a message naming c.Env, or fails if RequiredEnv is
// "required".
func Dir(tb testing.TB, c Corpus) string {
	tb.Helper()
	dir := os.Getenv(c.Env)
	if dir == "" {
		if root, ok := moduleRoot(); ok {
			dir = filepath.Join(filepath.Dir(root), filepath.FromSlash(c.Beside))
		}
	}
	if dir != "" {
		if st, err := os.Stat(dir); err == nil && st.IsDir() {
			return dir
		}
	}
	msg := "conformance corpus not found: set " + c.Env + " to its directory (../" + c.Beside + " beside the checkout)"
	if dir != "" {
		msg += "; looked in " + dir
	}
	if os.Getenv(RequiredEnv) == "required" {
		tb.Fatal(msg + "; " + RequiredEnv + "=required")
	}
	tb.Skip(msg)
	return ""
}

// moduleRoot is the nearest directory at or above the working directory
// (a test's package directory) holding go.mod.
func moduleRoot() (string, bool) {
	dir, err := os.Getwd()
	if err != nil {
		return "", false
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

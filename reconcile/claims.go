package reconcile

import (
	"path/filepath"
	"slices"
)

// ClaimsRoot is the directory under which StatefulSet volume claims live
// on a host (see ClaimDir).
func ClaimsRoot(stateDir string) string { return filepath.Join(stateDir, "volumes") }

// WithClaimDirs returns pol allowing hostPath volumes under the claims
// root of stateDir: a StatefulSet's volumeClaimTemplates expand to such
// volumes, and berth made those directories itself. Other hostPath
// volumes still need the operator's permission.
func WithClaimDirs(pol NodePolicy, stateDir string) NodePolicy {
	root := ClaimsRoot(stateDir)
	if slices.Contains(pol.HostPaths, root) {
		return pol
	}
	pol.HostPaths = append(slices.Clone(pol.HostPaths), root)
	return pol
}

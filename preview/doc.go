// Package preview answers "what would this change do?" before it is
// applied: it evaluates two revisions of a repository (or a revision and
// what runs on the host) with the same loader, expansion and planner as
// apply, and describes every pod that would be created, replaced or
// deleted, why, and which fields of its spec or mounted configuration
// differ.
//
// Invariants kept here:
//   - No host is touched: evaluation reads only the revision's files
//     (schema.Load, reconcile.Expand, reconcile.MakePlan); live previews
//     take the observed pods as data.
//   - Secret values never appear in any output: changed Secret data is
//     shown as "(secret changed)".
//   - A head revision that fails validation changes nothing, and its
//     problems come first, with file:line:col.
//
// The renderers write text for terminals (coloured on request), JSON, and
// Markdown for pull-request comments.
package preview

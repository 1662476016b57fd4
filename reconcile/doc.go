// Package reconcile is berth's core: the domain model of what a revision
// declares, the expansion of objects into desired pods, the pure planner
// that compares desired with observed pods, and apply, which carries a plan
// out through the small Runtime interface declared here.
//
// Invariants kept here:
//   - Plan is pure: Expand and MakePlan do no I/O, so a preview and an apply
//     share one code path.
//   - Unchanged means untouched: a pod whose spec hash did not change is
//     kept, whatever the revision.
//   - Only berth's own pods are observed; a Runtime never reports or touches
//     anything else.
//
// reconcile imports no adapter: no containerd, Git, CUE or file watching.
package reconcile

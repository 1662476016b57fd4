// Package reconcile is the pure core of berth's one engine: the domain
// model of what a revision declares; Expand, which turns objects (Pods,
// Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs, CronJob runs)
// into the pods a node should run, each with a spec hash; Decide, the one
// rule of what to do with every pod, every update strategy included;
// MakePlan, Decide's verdict as changes, step by step for a rollout;
// CheckRemovals, the one deletion-safety rule; and the one pod-status
// model (PodStatus, ObservePod). It also declares what the engine needs
// of a container runtime (Runtime and the optional interfaces beside it).
//
// plan, apply, the agent, rollback and previews all decide here; the pod
// manager (package reconcile/manager) carries decisions out, and
// runtime/containerd runs pods.
//
// Invariants kept here:
//   - Pure: nothing here does I/O or reads a clock; time comes in as
//     Input.Now, the past (Job results, CronJob runs, rollout progress) as
//     Records, plain data. So what plan prints is what apply does.
//   - Unchanged means untouched: a pod whose spec hash did not change is
//     kept, whatever the revision.
//   - A rule is written once: the strategy gates live in Decide only, the
//     deletion-safety rule in CheckRemovals only.
//
// reconcile imports no adapter: no containerd, Git, CUE or file watching.
package reconcile

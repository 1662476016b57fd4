// Package reconcile is berth's core: the domain model of what a revision
// declares, the expansion of objects into desired pods (Pods, Deployments,
// ReplicaSets, StatefulSets, DaemonSets, Jobs, CronJob runs) for a node,
// the pure planner that compares desired with observed pods, apply, which
// carries a plan out once through the small Runtime interface declared
// here, and the Manager, which keeps the host at the latest revision for
// as long as the agent runs: one worker per pod (restarts with kubelet's
// CrashLoopBackOff, init and sidecar containers, probes, deadlines, drift
// repair) and the workload controllers (rollouts, Jobs, CronJobs).
//
// Invariants kept here:
//   - Plan is pure: Expand and MakePlan do no I/O, so a preview and an apply
//     share one code path. What Expand needs to know of the past (Job
//     results, CronJob runs) comes in as Records, plain data.
//   - Unchanged means untouched: a pod whose spec hash did not change is
//     kept, whatever the revision.
//   - Only berth's own pods are observed; a Runtime never reports or touches
//     anything else.
//   - Containerd's labels and the records under <state-dir>/records are the
//     only state: records are written atomically, and before the side
//     effects they describe, so a kill -9 and a restart converge. Stopping
//     the Manager leaves every pod running.
//
// reconcile imports no adapter: no containerd, Git, CUE or file watching.
package reconcile

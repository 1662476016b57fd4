// Package manager is the long-running half of berth's one engine: the
// Manager keeps the host at the latest revision it was handed, carrying
// out what reconcile.Decide says through the runtime. One worker per pod
// drives its lifecycle (kubelet's CrashLoopBackOff, init and sidecar
// containers, probes, deadlines, drift repair); the Job and CronJob
// controllers keep their records. berth apply is the Manager run until
// the host converges (Converge); berth agent runs it for as long as the
// agent runs.
//
// Invariants kept here:
//   - Check before mutate: Sync refuses a revision, changing nothing, when
//     it does not expand, removes too much (reconcile.CheckRemovals) or
//     holds a pod the runtime will not admit.
//   - Events, not polling: a container's exit wakes its pod's worker (the
//     runtime's ExitWatcher); a full resync runs every 30 s.
//   - A worker that panics marks its pod failed; the others go on.
//   - Containerd's labels and the records under <state-dir>/records are the
//     only state: records are written atomically, before the side effects
//     they describe, so a kill -9 and a restart converge. Stopping the
//     Manager leaves every pod running.
package manager

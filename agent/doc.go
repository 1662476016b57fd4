// Package agent keeps the host equal to the repository, continuously.
//
// An Agent runs one loop. Triggers — the poll timer, a webhook, a change
// in a local directory, a container exit, the periodic resync, a health
// check or an operator's suspend/pin — only ring a doorbell (a channel
// with a buffer of one), so a burst of them causes one pass. A pass is a
// fixed list of steps: fetch, verify, load, check safety, reconcile,
// record; a deferred step always updates the status and the metrics.
//
// Invariants kept:
//
//   - A Git outage never changes a pod: a failed fetch keeps whatever was
//     applied. An agent started without network reconciles the last good
//     revision from its Git cache and prunes nothing.
//   - Stopping the agent never stops pods; starting it again makes no
//     runtime change when nothing changed (the plan is all "keep").
//   - A revision that fails verification, validation or the safety check
//     (deleting more than a share of the managed pods, or all of them)
//     changes nothing, and the status names the commit and the reason.
//   - A revision becomes "last good" only after the pods it created or
//     replaced were healthy. When they are not healthy within the deadline,
//     or crash, the last good revision is applied again and the bad one is
//     recorded and never retried until a newer commit arrives.
//   - The records (last fetched, applied, good, bad revisions, suspend and
//     pin) live under the state directory and are written atomically.
//
// The agent drives reconciliation through the small Reconciler interface
// and observes the host through Observer; it does no container I/O of its
// own.
package agent

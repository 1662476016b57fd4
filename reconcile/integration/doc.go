// Package integration holds the tests of berth's pod lifecycle and
// workload controllers against a real containerd, runc and CNI: restart
// backoff, init container ordering, StatefulSet volumes that survive a
// pod's replacement, and Jobs that stay complete across an agent restart.
// It has no code of its own.
package integration

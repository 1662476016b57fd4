// Package runtimetest is the contract suite every reconcile.Runtime must
// pass: the real one on containerd and the in-memory fake run the same
// tests, so the fake cannot drift from the real thing.
//
// The suite checks behaviour only through the reconcile.Runtime interface.
// Runtime-specific checks (leaks on the host, namespaces, networking) belong
// in the runtime's own tests.
package runtimetest

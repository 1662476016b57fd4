// Package faults holds berth's fault suite (make test-faults): it runs the
// real bin/berth against a private containerd and kills it, or containerd,
// at random points of create, replace and delete, kills and restarts
// containerd under berth apply and under berth agent in the middle of its
// rollouts, runs two applies at once and simulates a reboot. After each fault the next apply must
// converge: every desired pod runs once, pods the change did not touch
// keep their processes, and nothing is left behind (containers, tasks,
// snapshots, leases, network namespaces, IP allocations, iptables rules,
// pod directories, mounts).
//
// The tests need the build tag "faults" and BERTH_BIN, the berth binary
// to run (the Makefile sets both); without BERTH_BIN they fail.
package faults

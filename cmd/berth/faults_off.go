//go:build !faults

package main

import ctrd "berth.dev/berth/runtime/containerd"

// faultRuntime is the agent's runtime as it is. The fault suite's binary
// (built with the faults tag, faults_on.go) can wrap it to inject faults.
func faultRuntime(rt *ctrd.Runtime) agentRuntime { return rt }

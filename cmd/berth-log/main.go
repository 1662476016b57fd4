// Command berth-log is berth's container log daemon as a small program of
// its own: berth starts one per shim group, and it writes the logs of the
// group's containers (see package crilog). It does what `berth` does when
// started as the daemon, without the rest of berth loaded; berth uses it
// when it is installed next to the berth binary.
package main

import (
	"fmt"
	"os"

	"berth.dev/berth/runtime/containerd/crilog"
)

func main() {
	if !crilog.IsDriver() {
		fmt.Fprintln(os.Stderr, "berth-log: berth starts this program to write its containers' logs; it is not run by hand")
		os.Exit(2)
	}
	os.Exit(crilog.DriverMain())
}

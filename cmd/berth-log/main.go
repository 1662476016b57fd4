// Command berth-log is berth's container log driver as a small program of
// its own: a container's shim starts one per container, so its memory is
// paid per container. It does what `berth` does when started as the
// driver (see package crilog), without the rest of berth loaded; berth
// uses it when it is installed next to the berth binary.
package main

import (
	"fmt"
	"os"

	"berth.dev/berth/runtime/containerd/crilog"
)

func main() {
	if !crilog.IsDriver() {
		fmt.Fprintln(os.Stderr, "berth-log: containerd's shim starts this program to write a container's log; it is not run by hand")
		os.Exit(2)
	}
	os.Exit(crilog.DriverMain())
}

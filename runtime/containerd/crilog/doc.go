// Package crilog writes and reads container logs in the CRI log format
// the kubelet uses: one line per chunk of output,
//
//	2026-11-29T18:15:31.024519233Z stdout F hello
//
// with an RFC 3339 timestamp, the stream, a tag (F for a full line, P for
// the part of a line longer than 16 KiB that continues in the next
// entry) and the message. Files rotate by size: <path> is the newest,
// <path>.1 … <path>.N-1 the older ones.
//
// The writer runs as containerd's "binary" log driver: the container's
// shim starts a process with the container's stdout and stderr as file
// descriptors 3 and 4 and a readiness pipe as 5 (see DriverMain), so logs
// keep being written while berth itself is not running. Invariants: a
// line is written whole or not at all; rotation never loses a line; the
// reader joins partial lines back.
package crilog

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
// The writer runs in a log daemon, one per shim group (see Register,
// EnsureDaemon): the group's shims write each container's stdout and
// stderr into FIFOs in the daemon's directory, the daemon holds them open
// (so a stopped daemon loses nothing: the pipes keep what is written until
// the next daemon reads it) and writes the entries, so logs keep being
// written while berth itself is not running. Invariants: a line is
// written whole or not at all; rotation never loses a line; the reader
// joins partial lines back.
package crilog

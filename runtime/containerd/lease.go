package containerd

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/errdefs"
)

// Labels on the leases berth creates: which process made the lease, so a
// later process deletes only the leases of processes that died.
const (
	// LabelLeaseOwner is "<pid>:<start time in clock ticks since boot>"
	// of the process that created the lease.
	LabelLeaseOwner = "berth.dev/lease-owner"
	// LabelLeaseBoot is the kernel's boot ID when the lease was made.
	LabelLeaseBoot = "berth.dev/lease-boot"
)

// unlabelledLeaseAge is how old a lease without an owner (made by an
// older berth) must be before it counts as stale.
const unlabelledLeaseAge = 10 * time.Minute

// createLease creates the lease that holds a container's snapshot until
// its record does, labelled with the sandbox and with this process as
// its owner.
func (r *Runtime) createLease(ctx context.Context, id, sandbox string) error {
	_, err := r.client.LeasesService().Create(ctx, leases.WithID(id), leases.WithLabels(map[string]string{
		LabelManaged:    "true",
		LabelSandboxID:  sandbox,
		LabelLeaseOwner: selfOwner(),
		LabelLeaseBoot:  bootID(),
	}))
	if err != nil && !errdefs.IsAlreadyExists(err) {
		return err
	}
	return nil
}

// leaseStale reports whether l was left by a start that cannot finish
// any more: its owner process is gone (another boot, or no process with
// that PID and start time), or, for a lease without an owner, it is older
// than unlabelledLeaseAge. A lease of a live process — another berth
// applying at the same moment — is never stale.
func leaseStale(l leases.Lease, now time.Time) bool {
	owner, ok := l.Labels[LabelLeaseOwner]
	if !ok {
		return now.Sub(l.CreatedAt) > unlabelledLeaseAge
	}
	if b := l.Labels[LabelLeaseBoot]; b != "" && b != bootID() {
		return true
	}
	pid, start, _ := strings.Cut(owner, ":")
	n, err := strconv.Atoi(pid)
	if err != nil {
		return true
	}
	return LeaseOwner(n) != pid+":"+start
}

var selfOwner = sync.OnceValue(func() string { return LeaseOwner(os.Getpid()) })

var bootID = sync.OnceValue(func() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
})

// LeaseOwner returns the LabelLeaseOwner value of a running process,
// "<pid>:<start time>", or "" when there is none: the start time tells a
// PID reused by another process apart.
func LeaseOwner(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	// The command name may hold spaces and parentheses: fields count
	// from the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(s[i+1:])
	// Field 22 (starttime) is the 20th after the name.
	if len(f) < 20 {
		return ""
	}
	return strconv.Itoa(pid) + ":" + f[19]
}

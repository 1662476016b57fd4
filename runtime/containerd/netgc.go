package containerd

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/leases"
	gocni "github.com/containerd/go-cni"

	"berth.dev/berth/reconcile"
)

// cniIDRE matches the tail of the CNI IDs newCNIID makes.
var cniIDRE = regexp.MustCompile(`-[0-9a-f]{12}$`)

// ownCNIID reports whether cid is a CNI ID a sandbox of containerd
// namespace ns was given (newCNIID), so garbage collection may release
// it.
func ownCNIID(ns, cid string) bool {
	return strings.HasPrefix(cid, ns+"_") && cniIDRE.MatchString(cid)
}

// cniDelRetry runs CNI DEL up to three times, a little apart: a plugin
// may fail for a moment (iptables' lock held by another program).
func (r *Runtime) cniDelRetry(ctx context.Context, id reconcile.PodID, cid, path string, ports []gocni.PortMapping) error {
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			select {
			case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
			case <-ctx.Done():
				return err
			}
		}
		if err = r.cniDel(ctx, id, cid, path, ports); err == nil {
			return nil
		}
	}
	return err
}

// Garbage collection intervals: RunGarbageCollection collects every
// gcInterval, gcSoon after a removal left something to it, and again
// gcRetry after a collection that could not release everything.
const (
	gcInterval = 10 * time.Minute
	gcSoon     = 5 * time.Second
	gcRetry    = time.Minute
)

// CollectGarbage releases what removals left behind on purpose, and
// reports whether it released everything it found: the network
// attachments of sandboxes of this containerd namespace that no longer
// exist (a removal whose CNI DEL kept failing), the logs kept of removed
// pods that were not made again within an hour, and the older of a
// container's two instances once it no longer runs. Each berth command
// runs it at start (with the stale leases, on one list of the
// namespace's containers); the agent runs RunGarbageCollection too.
func (r *Runtime) CollectGarbage(ctx context.Context) bool {
	ok, _, _ := r.collect(ctx, false)
	return ok
}

// collect is CollectGarbage, and withLeases also deleteStaleLeases, whose
// error (listing the leases or containers, or deleting a lease) it
// returns. listed are the records it listed, unless it removed some.
// What it reads of berth's own records is read before the containers are
// listed: a sandbox's record exists before its CNI ADD,
// and a container's before its start lets go of the lease, so a live
// allocation or lease always has its container in the list.
func (r *Runtime) collect(ctx context.Context, withLeases bool) (ok bool, listed []containers.Container, err error) {
	ctx = r.nsctx(ctx)
	allocated := r.allocations()
	kept, _ := os.ReadDir(r.keptLogsRoot())
	var ls []leases.Lease
	if withLeases {
		if ls, err = r.client.LeasesService().List(ctx, labelFilter(LabelManaged, "true")); err != nil {
			return false, nil, err
		}
	}
	recs, err := r.client.ContainerService().List(ctx, labelFilter(LabelManaged, "true"))
	if err != nil {
		if withLeases {
			return false, nil, err
		}
		r.log.Warn("garbage collection: list containers", "error", err)
		return false, nil, nil
	}
	if err := r.deleteStaleLeases(ctx, ls, recs); err != nil {
		return false, nil, err
	}
	ok, removed := r.collectOldInstances(ctx, recs)
	if !removed {
		listed = recs
	}
	if len(allocated) == 0 && len(kept) == 0 {
		return ok, listed, nil
	}
	live := map[string]bool{}
	for _, c := range recs {
		if c.Labels[LabelRole] == RoleSandbox {
			live[c.Labels[LabelCNIID]] = true
			live[c.ID] = true
		}
	}
	r.collectKeptLogs(kept, live)
	return r.collectNetwork(ctx, allocated, live) && ok, listed, nil
}

// collectOldInstances removes the older of a container's two instances
// (see InstanceIDs) when it no longer runs: what a start stopped between
// the new instance's start and the old one's removal leaves behind.
// Listing already shows only the newer; this frees the older's snapshot,
// lease and log registration.
func (r *Runtime) collectOldInstances(ctx context.Context, recs []containers.Container) (ok, removed bool) {
	ok = true
	for id := range olderInstances(recs) {
		if !r.taskExited(ctx, id) {
			continue // a start in progress removes it
		}
		removed = true // or may have, in part
		if err := r.removeContainer(ctx, id, 0); err != nil {
			r.log.Warn("garbage collection: remove a container's old instance", "container", id, "error", err)
			ok = false
			continue
		}
		r.log.Info("removed a container's old instance", "container", id)
	}
	return ok, removed
}

// RunGarbageCollection runs CollectGarbage until ctx ends: every
// gcInterval, soon after a removal left its network to garbage collection
// (CollectSoon), and again a minute after a collection that failed.
func (r *Runtime) RunGarbageCollection(ctx context.Context) {
	timer := time.NewTimer(gcInterval)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.gcBell:
			timer.Reset(gcSoon)
			continue
		case <-timer.C:
		}
		next := gcInterval
		r.startLogDaemons() // a log daemon that died meanwhile
		if !r.CollectGarbage(ctx) && ctx.Err() == nil {
			next = gcRetry
		}
		timer.Reset(next)
	}
}

// CollectSoon asks RunGarbageCollection for a collection a few seconds
// from now. It never blocks.
func (r *Runtime) CollectSoon() {
	select {
	case r.gcBell <- struct{}{}:
	default:
	}
}

// allocations returns the CNI IDs of this containerd namespace's
// sandboxes that berth's network holds addresses for.
func (r *Runtime) allocations() []string {
	if r.ownNetwork == "" {
		return nil
	}
	dir := filepath.Join(IPAMDir, r.ownNetwork)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var ids []string
	for _, e := range ents {
		if n := e.Name(); n == "lock" || strings.HasPrefix(n, "last_reserved_ip") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		cid, _, _ := strings.Cut(strings.ReplaceAll(string(b), "\r", ""), "\n")
		if ownCNIID(r.ns, cid) {
			ids = append(ids, cid)
		}
	}
	return ids
}

// collectNetwork releases the addresses (and masquerade rules) berth's
// network holds for the allocated sandboxes that are not live: a sandbox
// whose CNI DEL kept failing is removed anyway, and its attachment is
// collected here. Allocations of other namespaces (another berth on the
// network) and of live sandboxes are left alone.
func (r *Runtime) collectNetwork(ctx context.Context, allocated []string, live map[string]bool) bool {
	ok := true
	for _, cid := range allocated {
		if live[cid] {
			continue
		}
		if err := r.cniDel(ctx, reconcile.PodID{}, cid, "", nil); err != nil {
			r.log.Warn("garbage collection: cni del", "cni_id", cid, "error", err)
			ok = false
			continue
		}
		r.log.Info("released the network of a removed sandbox", "cni_id", cid)
	}
	return ok
}

// collectKeptLogs removes the logs kept of removed pods (keptLogsDir)
// that have no sandbox and were kept longer than keptLogsAge ago.
func (r *Runtime) collectKeptLogs(kept []os.DirEntry, live map[string]bool) {
	for _, e := range kept {
		info, err := e.Info()
		if err != nil || live[e.Name()] || time.Since(info.ModTime()) < keptLogsAge {
			continue
		}
		if err := os.RemoveAll(filepath.Join(r.keptLogsRoot(), e.Name())); err != nil {
			r.log.Warn("garbage collection: kept logs", "dir", e.Name(), "error", err)
		}
	}
}

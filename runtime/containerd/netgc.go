package containerd

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

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

// collectNetwork releases the addresses (and masquerade rules) berth's
// network still holds for sandboxes of this containerd namespace that no
// longer exist: a sandbox whose CNI DEL kept failing is removed anyway,
// and its attachment is collected here, at the next start of berth.
// Allocations of other namespaces (another berth on the network) and of
// live sandboxes are left alone.
func (r *Runtime) collectNetwork(ctx context.Context) {
	if r.ownNetwork == "" {
		return
	}
	dir := filepath.Join(IPAMDir, r.ownNetwork)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	var candidates []string
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
			candidates = append(candidates, cid)
		}
	}
	if len(candidates) == 0 {
		return
	}
	// Listed after the allocations were read: a sandbox's record exists
	// before its CNI ADD, so a live allocation always has one here.
	recs, err := r.client.ContainerService().List(ctx, labelFilter(LabelManaged, "true", LabelRole, RoleSandbox))
	if err != nil {
		r.log.Warn("network garbage collection: list sandboxes", "error", err)
		return
	}
	live := map[string]bool{}
	for _, c := range recs {
		live[c.Labels[LabelCNIID]] = true
	}
	for _, cid := range candidates {
		if live[cid] {
			continue
		}
		if err := r.cniDel(ctx, reconcile.PodID{}, cid, "", nil); err != nil {
			r.log.Warn("network garbage collection: cni del", "cni_id", cid, "error", err)
			continue
		}
		r.log.Info("released the network of a removed sandbox", "cni_id", cid)
	}
}

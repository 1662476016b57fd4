package manager

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"berth.dev/berth/internal/record"
	"berth.dev/berth/reconcile"
)

// StatefulSetRecord remembers the volume claims of a StatefulSet whose
// persistentVolumeClaimRetentionPolicy deletes them when the set is
// deleted, so they can be found once the set is gone from the revision.
type StatefulSetRecord struct {
	Claims []string `json:"claims"`
}

// claimOrdinals lists the ordinals that have a directory for claim of set
// under the claims root of stateDir.
func claimOrdinals(stateDir, namespace, claim, set string) map[int]string {
	out := map[int]string{}
	dir := filepath.Join(reconcile.ClaimsRoot(stateDir), namespace)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return out
	}
	prefix := claim + "-" + set + "-"
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || !e.IsDir() {
			continue
		}
		n, err := strconv.Atoi(rest)
		if err != nil || n < 0 || strconv.Itoa(n) != rest {
			continue
		}
		out[n] = filepath.Join(dir, e.Name())
	}
	return out
}

// sweepClaims applies the StatefulSets' claim retention policies: with
// whenScaled: Delete, the claims of ordinals beyond the set's replicas
// are deleted once their pods are gone; with whenDeleted: Delete, the
// claims of a set the revision no longer declares are deleted once its
// pods are gone. Retain, the default, keeps them.
func (m *Manager) sweepClaims(objs []reconcile.Object, observed []reconcile.ObservedPod) {
	running := map[string]map[int]bool{} // namespace/set → ordinals with a pod
	for _, p := range observed {
		kind, ns, set := reconcile.SplitOwner(p.Owner)
		if kind != "StatefulSet" {
			continue
		}
		key := reconcile.NamespaceOr(ns) + "/" + set
		if running[key] == nil {
			running[key] = map[int]bool{}
		}
		running[key][reconcile.StatefulSetOrdinal(set, p.ID.Name)] = true
	}
	declared := map[string]bool{}
	for i := range objs {
		o := &objs[i]
		if o.Kind != "StatefulSet" || o.StatefulSet == nil {
			continue
		}
		s := o.StatefulSet
		ns := reconcile.NamespaceOr(o.Metadata.Namespace)
		key := ns + "/" + o.Metadata.Name
		declared[key] = true
		pol := s.PersistentVolumeClaimRetentionPolicy
		var claims []string
		for _, c := range s.VolumeClaimTemplates {
			claims = append(claims, c.Metadata.Name)
		}
		if pol != nil && pol.WhenDeleted == "Delete" && len(claims) > 0 {
			var have StatefulSetRecord
			ok, _ := record.Read(filepath.Join(m.store.Dir, "statefulsets"), fileKey(key), &have)
			if !ok || !slices.Equal(have.Claims, claims) {
				if err := m.store.write("statefulsets", key, &StatefulSetRecord{Claims: claims}); err != nil {
					m.log.Warn("write statefulset record", "statefulset", key, "error", err)
				}
			}
		} else if err := m.store.remove("statefulsets", key); err != nil {
			m.log.Warn("remove statefulset record", "statefulset", key, "error", err)
		}
		if pol == nil || pol.WhenScaled != "Delete" {
			continue
		}
		start := 0
		if s.Ordinals != nil {
			start = int(s.Ordinals.Start)
		}
		end := start + reconcile.ReplicaCount(s.Replicas)
		for _, claim := range claims {
			for ord, dir := range claimOrdinals(m.opts.StateDir, ns, claim, o.Metadata.Name) {
				if (ord < start || ord >= end) && !running[key][ord] {
					m.removeClaim(key, dir)
				}
			}
		}
	}
	recs := map[string]*StatefulSetRecord{}
	if err := loadAll(filepath.Join(m.store.Dir, "statefulsets"), func() any { return &StatefulSetRecord{} }, func(k string, v any) {
		recs[k] = v.(*StatefulSetRecord)
	}); err != nil {
		m.log.Warn("read statefulset records", "error", err)
		return
	}
	for key, rec := range recs {
		ns, name, _ := cutKey(key)
		if declared[key] || len(running[key]) > 0 {
			continue
		}
		for _, claim := range rec.Claims {
			for _, dir := range claimOrdinals(m.opts.StateDir, ns, claim, name) {
				m.removeClaim(key, dir)
			}
		}
		if err := m.store.remove("statefulsets", key); err != nil {
			m.log.Warn("remove statefulset record", "statefulset", key, "error", err)
		}
	}
}

func (m *Manager) removeClaim(set, dir string) {
	m.log.Info("deleting volume claim", "statefulset", set, "dir", dir)
	if err := os.RemoveAll(dir); err != nil {
		m.log.Warn("delete volume claim", "dir", dir, "error", err)
	}
}

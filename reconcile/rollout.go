package reconcile

import (
	"sort"
	"time"
)

// Deployment conditions shown in the workloads' status.
const (
	ConditionProgressing              = "Progressing"
	ConditionAvailable                = "Available"
	ConditionProgressDeadlineExceeded = "ProgressDeadlineExceeded"
)

// rollout decides, per pod, what the workers should do now: the expanded
// pods, gated by each workload's update strategy. A pod in the result with
// a spec is driven to it; a retained pod without one is left as it runs;
// an observed pod missing from the result is removed.
func (m *Manager) rollout(objs []Object, x *expansion, observed []ObservedPod, st map[PodID]*PodStatus, known map[PodID]*DesiredPod, now time.Time) (map[PodID]assignment, []WorkloadStatus, time.Time) {
	r := &rolloutPass{
		m: m, st: st, known: known, now: now, plan: map[PodID]assignment{},
		desired: map[string][]*DesiredPod{}, observed: map[string][]*ObservedPod{},
	}
	for i := range x.pods {
		p := &x.pods[i]
		r.desired[p.Owner] = append(r.desired[p.Owner], p)
	}
	for i := range observed {
		o := &observed[i]
		r.observed[o.Owner] = append(r.observed[o.Owner], o)
	}
	for i := range objs {
		o := &objs[i]
		switch o.Kind {
		case "Deployment":
			if o.Deployment != nil {
				r.deployment(o)
			}
		case "StatefulSet":
			if o.StatefulSet != nil {
				r.statefulSet(o)
			}
		case "DaemonSet":
			if o.DaemonSet != nil {
				r.daemonSet(o)
			}
		case "ReplicaSet":
			if o.ReplicaSet != nil {
				r.replicaSet(o)
			}
		default:
			r.direct(o.Key())
		}
	}
	// Pods of Jobs made by CronJobs, and any other owner the objects do
	// not name directly.
	for owner := range r.desired {
		if !r.done[owner] {
			r.direct(owner)
		}
	}
	r.m.forgetDeployments(objs)
	return r.plan, r.workloads, r.wake
}

// replicaSet keeps replicas pods of a ReplicaSet. As in Kubernetes, a
// changed template does not touch the pods that run: they still count,
// and only the pods made from now on use the new template.
func (r *rolloutPass) replicaSet(o *Object) {
	owner := o.Key()
	r.mark(owner)
	want := sortedPods(r.desired[owner])
	replicas := len(want)
	if replicas == 0 {
		r.status(o, 0, o.ReplicaSet.MinReadySeconds, "")
		return
	}
	tmpl := want[0]
	var cur, old []*ObservedPod
	obsSet := map[PodID]bool{}
	for _, p := range r.observed[owner] {
		obsSet[p.ID] = true
		if p.Hash == tmpl.Hash {
			cur = append(cur, p)
		} else {
			old = append(old, p)
		}
	}
	byName := func(ps []*ObservedPod) {
		sort.Slice(ps, func(i, j int) bool { return ps[i].ID.Name < ps[j].ID.Name })
	}
	byName(cur)
	byName(old)
	total := 0
	for _, p := range cur {
		if total < replicas {
			d := *tmpl // the same template: the same spec hash
			d.ID = p.ID
			r.plan[p.ID] = assignment{d: &d}
			total++
		}
	}
	for _, p := range old {
		if total < replicas {
			r.keep(p.ID)
			total++
		}
	}
	for _, p := range want {
		if !obsSet[p.ID] && total < replicas {
			r.plan[p.ID] = assignment{d: p}
			total++
		}
	}
	r.status(o, replicas, o.ReplicaSet.MinReadySeconds, "")
}

type rolloutPass struct {
	m         *Manager
	st        map[PodID]*PodStatus
	known     map[PodID]*DesiredPod
	now       time.Time
	plan      map[PodID]assignment
	desired   map[string][]*DesiredPod
	observed  map[string][]*ObservedPod
	workloads []WorkloadStatus
	wake      time.Time
	done      map[string]bool
}

func (r *rolloutPass) mark(owner string) {
	if r.done == nil {
		r.done = map[string]bool{}
	}
	r.done[owner] = true
}

// direct plans every desired pod of owner as it is.
func (r *rolloutPass) direct(owner string) {
	r.mark(owner)
	for _, p := range r.desired[owner] {
		r.plan[p.ID] = assignment{d: p}
	}
}

// keep plans an observed pod to stay as it runs, with the spec it was
// last given when berth knows it.
func (r *rolloutPass) keep(id PodID) {
	if d := r.known[id]; d != nil {
		r.plan[id] = assignment{d: d}
		return
	}
	r.plan[id] = assignment{retain: true}
}

func (r *rolloutPass) ready(id PodID) bool {
	s := r.st[id]
	return s != nil && s.Ready
}

// available reports whether pod id has been ready for minReady.
func (r *rolloutPass) available(id PodID, minReady int32) bool {
	s := r.st[id]
	if s == nil || !s.Ready {
		return false
	}
	at := s.ReadySince.Add(time.Duration(minReady) * time.Second)
	if r.now.Before(at) {
		r.wakeAt(at)
		return false
	}
	return true
}

func (r *rolloutPass) wakeAt(t time.Time) { r.wake = earliest(r.wake, t) }

// status adds the workload's status row, from the pods planned for it.
func (r *rolloutPass) status(o *Object, desired int, minReady int32, cond string) {
	ns := namespaceOr(o.Metadata.Namespace)
	w := WorkloadStatus{Kind: o.Kind, Namespace: ns, Name: o.Metadata.Name, Desired: desired, Condition: cond}
	want := map[string]bool{}
	for _, p := range r.desired[o.Key()] {
		want[p.Hash] = true
	}
	for _, p := range r.observed[o.Key()] {
		w.Current++
		if r.ready(p.ID) {
			w.Ready++
		}
		if r.available(p.ID, minReady) {
			w.Available++
		}
		if want[p.Hash] {
			w.UpToDate++
		}
	}
	r.workloads = append(r.workloads, w)
}

func sortedPods(ps []*DesiredPod) []*DesiredPod {
	out := append([]*DesiredPod(nil), ps...)
	sort.Slice(out, func(i, j int) bool { return out[i].ID.Name < out[j].ID.Name })
	return out
}

// deployment rolls a Deployment to its current template: Recreate removes
// every old pod before the first new one starts; RollingUpdate keeps at
// most replicas+maxSurge pods and at least replicas-maxUnavailable
// available ones (ready for minReadySeconds), as the Deployment
// controller does.
func (r *rolloutPass) deployment(o *Object) {
	spec := o.Deployment
	owner := o.Key()
	r.mark(owner)
	newPods := sortedPods(r.desired[owner])
	replicas := len(newPods)
	if ok, _ := r.m.opts.Node.Matches(&spec.Template.Spec); !ok {
		replicas = 0
	}
	newSet := map[PodID]bool{}
	for _, p := range newPods {
		newSet[p.ID] = true
	}
	obsSet := map[PodID]bool{}
	var old []*ObservedPod
	for _, p := range r.observed[owner] {
		obsSet[p.ID] = true
		if !newSet[p.ID] {
			old = append(old, p)
		}
	}
	var existingNew []*DesiredPod
	availNew := 0
	for _, p := range newPods {
		if obsSet[p.ID] {
			existingNew = append(existingNew, p)
			if r.available(p.ID, spec.MinReadySeconds) {
				availNew++
			}
		}
	}
	planNew := func(n int) {
		for _, p := range newPods {
			if obsSet[p.ID] {
				r.plan[p.ID] = assignment{d: p}
			} else if n > 0 {
				r.plan[p.ID] = assignment{d: p}
				n--
			}
		}
	}
	switch {
	case spec.Paused:
		for _, p := range old {
			r.keep(p.ID)
		}
		planNew(0)
	case spec.Strategy.Type == "Recreate":
		if len(old) > 0 {
			planNew(0) // old pods go first; their removal is the plan
		} else {
			planNew(replicas)
		}
	default:
		surge, unavail := 1, 0
		ru := spec.Strategy.RollingUpdate
		quarter := FromString("25%")
		ms, mu := &quarter, &quarter
		if ru != nil && ru.MaxSurge != nil {
			ms = ru.MaxSurge
		}
		if ru != nil && ru.MaxUnavailable != nil {
			mu = ru.MaxUnavailable
		}
		surge, _ = ms.Scaled(replicas, true)
		unavail, _ = mu.Scaled(replicas, false)
		if surge == 0 && unavail == 0 {
			unavail = 1
		}
		// Scale the new pods up within replicas+surge.
		room := replicas + surge - len(old) - len(existingNew)
		planNew(max(0, min(room, replicas-len(existingNew))))
		// Scale the old pods down while enough stay available.
		minAvailable := replicas - unavail
		all := len(old) + len(existingNew)
		newUnavailable := len(existingNew) - availNew
		canRemove := all - minAvailable - newUnavailable
		sort.Slice(old, func(i, j int) bool {
			ai, aj := r.available(old[i].ID, spec.MinReadySeconds), r.available(old[j].ID, spec.MinReadySeconds)
			if ai != aj {
				return !ai // unavailable pods go first
			}
			return old[i].ID.Name < old[j].ID.Name
		})
		// Old pods beyond what the new template can replace (a scale-down
		// during the rollout) go as well.
		for _, p := range old {
			if canRemove > 0 {
				canRemove--
				continue // not planned: removed
			}
			r.keep(p.ID)
		}
	}
	r.progress(o, replicas, len(old), availNew)
}

// progress keeps a Deployment's rollout record: when the rollout of the
// current template began and last made progress, whether it completed or
// passed progressDeadlineSeconds.
func (r *rolloutPass) progress(o *Object, replicas, old, availNew int) {
	spec := o.Deployment
	key := namespaceOr(o.Metadata.Namespace) + "/" + o.Metadata.Name
	hash := ""
	if ps := r.desired[o.Key()]; len(ps) > 0 {
		hash = ps[0].Labels[LabelPodTemplateHash]
	}
	recs := r.m.deployments()
	rec := recs[key]
	changed := false
	if rec == nil || rec.Hash != hash {
		rec = &DeploymentRecord{Hash: hash, Since: r.now, LastProgress: r.now}
		changed = true
	}
	if availNew > rec.Available {
		rec.Available, rec.LastProgress, changed = availNew, r.now, true
	}
	complete := old == 0 && availNew >= replicas
	if complete != rec.Complete {
		rec.Complete, changed = complete, true
		if complete {
			rec.Failed = false
		}
	}
	deadline := 600 * time.Second
	if spec.ProgressDeadlineSeconds != nil {
		deadline = time.Duration(*spec.ProgressDeadlineSeconds) * time.Second
	}
	if !rec.Complete && !rec.Failed && !spec.Paused {
		if at := rec.LastProgress.Add(deadline); !r.now.Before(at) {
			rec.Failed, changed = true, true
			r.m.log.Warn("rollout stuck", "deployment", key, "reason", ConditionProgressDeadlineExceeded)
		} else {
			r.wakeAt(at)
		}
	}
	if changed {
		r.m.setDeployment(key, rec)
	}
	cond := ConditionProgressing
	switch {
	case rec.Failed:
		cond = ConditionProgressDeadlineExceeded
	case rec.Complete:
		cond = ConditionAvailable
	}
	r.status(o, replicas, spec.MinReadySeconds, cond)
}

// statefulSet creates, updates and removes a StatefulSet's pods in
// ordinal order: with OrderedReady each pod waits for the ones before it
// to be ready and removal goes from the highest ordinal down, one at a
// time; Parallel creates and removes all at once. RollingUpdate replaces
// pods from the highest ordinal down to the partition, one at a time, each
// once the set is ready; OnDelete replaces a pod only when it is gone.
func (r *rolloutPass) statefulSet(o *Object) {
	spec := o.StatefulSet
	owner := o.Key()
	r.mark(owner)
	set := o.Metadata.Name
	ordered := spec.PodManagementPolicy != "Parallel"
	want := sortedByOrdinal(set, r.desired[owner])
	obs := map[int]*ObservedPod{}
	for _, p := range r.observed[owner] {
		obs[StatefulSetOrdinal(set, p.ID.Name)] = p
	}
	wantOrd := map[int]bool{}
	for _, p := range want {
		wantOrd[StatefulSetOrdinal(set, p.ID.Name)] = true
	}
	allReady := true
	for _, p := range r.observed[owner] {
		if !r.ready(p.ID) {
			allReady = false
		}
	}
	// Creation, in order.
	blocked := false
	for _, p := range want {
		ord := StatefulSetOrdinal(set, p.ID.Name)
		o, exists := obs[ord]
		if !exists {
			if blocked {
				continue
			}
			r.plan[p.ID] = assignment{d: p}
			if ordered {
				blocked = true
			}
			continue
		}
		switch {
		case o.Hash == p.Hash:
			r.plan[p.ID] = assignment{d: p}
		case !o.SandboxReady:
			// A pod whose sandbox is gone (a reboot, a kill mid-way) is
			// made again: below the partition from the template it had,
			// when berth still knows it, else from the current one.
			r.plan[p.ID] = assignment{d: p}
			if old := r.known[p.ID]; old != nil && old.Hash == o.Hash && ord < statefulSetPartition(spec) {
				r.plan[p.ID] = assignment{d: old}
			}
		default:
			r.keep(p.ID) // decided below
		}
		if ordered && !r.ready(p.ID) {
			blocked = true
		}
	}
	// Updates.
	partition := statefulSetPartition(spec)
	onDelete := spec.UpdateStrategy.Type == "OnDelete"
	if !onDelete {
		for i := len(want) - 1; i >= 0; i-- {
			p := want[i]
			ord := StatefulSetOrdinal(set, p.ID.Name)
			o, exists := obs[ord]
			if !exists || o.Hash == p.Hash || ord < partition {
				continue
			}
			// One pod at a time, once every pod is ready.
			if allReady {
				r.plan[p.ID] = assignment{d: p}
			}
			break
		}
	}
	// Removal of ordinals beyond replicas, from the highest down.
	var condemned []int
	for ord := range obs {
		if !wantOrd[ord] {
			condemned = append(condemned, ord)
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(condemned)))
	for i, ord := range condemned {
		if ordered && (i > 0 || !allReady) {
			r.keep(obs[ord].ID)
		}
	}
	r.status(o, len(want), spec.MinReadySeconds, "")
}

func sortedByOrdinal(set string, ps []*DesiredPod) []*DesiredPod {
	out := append([]*DesiredPod(nil), ps...)
	sort.Slice(out, func(i, j int) bool {
		return StatefulSetOrdinal(set, out[i].ID.Name) < StatefulSetOrdinal(set, out[j].ID.Name)
	})
	return out
}

// daemonSet runs its one pod; RollingUpdate replaces it when the template
// changes, OnDelete only once it is gone.
func (r *rolloutPass) daemonSet(o *Object) {
	spec := o.DaemonSet
	owner := o.Key()
	r.mark(owner)
	obs := map[PodID]*ObservedPod{}
	for _, p := range r.observed[owner] {
		obs[p.ID] = p
	}
	for _, p := range r.desired[owner] {
		if cur, ok := obs[p.ID]; ok && cur.Hash != p.Hash && cur.SandboxReady && spec.UpdateStrategy.Type == "OnDelete" {
			r.keep(p.ID)
			continue
		}
		r.plan[p.ID] = assignment{d: p}
	}
	r.status(o, len(r.desired[owner]), spec.MinReadySeconds, "")
}

func statefulSetPartition(s *StatefulSetSpec) int {
	if ru := s.UpdateStrategy.RollingUpdate; ru != nil && ru.Partition != nil && s.UpdateStrategy.Type != "OnDelete" {
		return int(*ru.Partition)
	}
	return 0
}

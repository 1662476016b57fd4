package reconcile

import (
	"fmt"
	"sort"
	"time"
)

// Deployment conditions shown in the workloads' status.
const (
	ConditionProgressing              = "Progressing"
	ConditionAvailable                = "Available"
	ConditionProgressDeadlineExceeded = "ProgressDeadlineExceeded"
)

// Input is everything the engine decides from: a revision's objects and
// the pods they expand to, what runs, and what berth remembers. Deciding
// does no I/O and reads no clock but Now.
type Input struct {
	Revision string
	Objects  []Object
	// Pods are the revision's desired pods (Expand's result).
	Pods []DesiredPod
	// Observed are the pods that run.
	Observed []ObservedPod
	// Status is the status of observed pods (readiness, from probes), as
	// the manager's workers know it; a pod missing from it is not ready.
	// Nil (a one-shot plan, no workers) judges every pod from the runtime
	// alone (ObservePod: a running container counts as ready).
	Status map[PodID]*PodStatus
	// Known is the spec each pod was last given, when berth knows it: a
	// pod a rollout holds keeps it.
	Known map[PodID]*DesiredPod
	// Deployments are the Deployments' rollout records.
	Deployments map[string]*DeploymentRecord
	// Terminating are observed pods already being removed. As pods with a
	// deletion timestamp to a Deployment controller, they count neither
	// toward a rolling update's surge nor as available, so the next new
	// pod starts while an old one stops.
	Terminating map[PodID]bool
	Node        Node
	Now         time.Time
}

// Target is what the engine wants of one pod now.
type Target struct {
	// Spec is the spec the pod is driven to; nil with Retain.
	Spec *DesiredPod
	// Retain leaves the pod as it runs: a rollout holds it and berth does
	// not know the spec it was given.
	Retain bool
	// Held says why an update strategy keeps the pod on its old template
	// ("" when it is not held).
	Held string
	// Waits marks a hold the rollout lifts by itself once other pods are
	// ready (a rolling update's next step); other holds last until the
	// revision or the operator changes something (OnDelete, partition,
	// paused).
	Waits bool
}

// Decision is the engine's verdict for one moment: a Target for every pod
// to keep or drive (an observed pod without one is removed), why each
// desired pod that gets no Target yet waits, the workloads' status, and
// the rollout records to keep.
type Decision struct {
	Targets map[PodID]Target
	// Waiting are the desired pods a rollout does not start yet, with why.
	Waiting map[PodID]string
	// Removing says why an observed pod without a Target is removed.
	Removing  map[PodID]string
	Workloads []WorkloadStatus
	// Deployments are the rollout records after this decision: changed
	// ones are in Changed.
	Deployments map[string]*DeploymentRecord
	Changed     []string
	// Forgotten are records of Deployments the revision no longer declares.
	Forgotten []string
	// Stuck names the Deployments that passed progressDeadlineSeconds in
	// this decision.
	Stuck []string
	// Wake is when the same inputs would decide differently (a
	// minReadySeconds or progress deadline), zero when never.
	Wake time.Time
}

// Decide is the one rule of what to do with every pod: the desired pods,
// gated by each workload's update strategy (RollingUpdate with maxSurge
// and maxUnavailable, Recreate, OnDelete, partition, podManagementPolicy,
// minReadySeconds). plan, apply, the agent, rollback and previews all go
// through it.
func Decide(in Input) Decision {
	st := in.Status
	if st == nil {
		st = statusFromRuntime(in)
	}
	desiredByID := make(map[PodID]*DesiredPod, len(in.Pods))
	for i := range in.Pods {
		desiredByID[in.Pods[i].ID] = &in.Pods[i]
	}
	recs := map[string]*DeploymentRecord{}
	for k, v := range in.Deployments {
		recs[k] = v
	}
	r := &rolloutPass{
		node: in.Node, st: st, known: in.Known, now: in.Now, recs: recs, terminating: in.Terminating,
		plan: map[PodID]Target{}, waiting: map[PodID]string{},
		desired: map[string][]*DesiredPod{}, observed: map[string][]*ObservedPod{},
	}
	for i := range in.Pods {
		p := &in.Pods[i]
		r.desired[p.Owner] = append(r.desired[p.Owner], p)
	}
	for i := range in.Observed {
		o := &in.Observed[i]
		r.observed[o.Owner] = append(r.observed[o.Owner], o)
	}
	for i := range in.Objects {
		o := &in.Objects[i]
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
	d := Decision{
		Targets: r.plan, Waiting: r.waiting, Removing: map[PodID]string{},
		Workloads: r.workloads, Deployments: recs, Changed: r.changed, Stuck: r.stuck, Wake: r.wake,
	}
	for _, p := range in.Pods {
		if _, ok := d.Targets[p.ID]; ok {
			delete(d.Waiting, p.ID)
		} else if d.Waiting[p.ID] == "" {
			d.Waiting[p.ID] = "waits for its workload's rollout"
		}
	}
	for i := range in.Observed {
		o := &in.Observed[i]
		if _, ok := d.Targets[o.ID]; ok {
			continue
		}
		why := r.removing[o.ID]
		if why == "" {
			why = "no longer in the revision"
			if desiredByID[o.ID] != nil {
				why = "replaced by its workload's rollout"
			} else if len(r.desired[o.Owner]) > 0 || r.done[o.Owner] {
				why = "its workload no longer wants it"
			}
		}
		d.Removing[o.ID] = why
	}
	// Rollout records of Deployments the revision no longer declares.
	declared := map[string]bool{}
	for i := range in.Objects {
		if in.Objects[i].Kind == "Deployment" {
			declared[NamespaceOr(in.Objects[i].Metadata.Namespace)+"/"+in.Objects[i].Metadata.Name] = true
		}
	}
	for key := range recs {
		if !declared[key] {
			d.Forgotten = append(d.Forgotten, key)
			delete(recs, key)
		}
	}
	sort.Strings(d.Forgotten)
	sort.Strings(d.Changed)
	sort.Strings(d.Stuck)
	return d
}

// statusFromRuntime judges every observed pod of in from the runtime
// alone, for a plan made without the workers' probe results: a running
// container counts as ready, since it was created.
func statusFromRuntime(in Input) map[PodID]*PodStatus {
	specs := make(map[PodID]*DesiredPod, len(in.Pods))
	for i := range in.Pods {
		specs[in.Pods[i].ID] = &in.Pods[i]
	}
	st := make(map[PodID]*PodStatus, len(in.Observed))
	for i := range in.Observed {
		o := &in.Observed[i]
		var spec *PodSpec
		if d := specs[o.ID]; d != nil && d.Hash == o.Hash {
			spec = &d.Spec
		} else if k := in.Known[o.ID]; k != nil && k.Hash == o.Hash {
			spec = &k.Spec
		}
		s := ObservePod(o, nil, spec)
		if s.Ready {
			s.ReadySince = o.CreatedAt
		}
		st[o.ID] = &s
	}
	return st
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
			r.plan[p.ID] = Target{Spec: &d}
			total++
		}
	}
	for _, p := range old {
		if total < replicas {
			r.keep(p.ID, "a ReplicaSet keeps its running pods when its template changes")
			total++
		}
	}
	for _, p := range want {
		if obsSet[p.ID] {
			continue
		}
		if total < replicas {
			r.plan[p.ID] = Target{Spec: p}
			total++
		} else {
			r.waiting[p.ID] = reasonUnneeded
		}
	}
	r.status(o, replicas, o.ReplicaSet.MinReadySeconds, "")
}

// reasonPaused: a paused Deployment's rollout does not go on.
const reasonPaused = "the Deployment is paused"

// rolloutPass is the state of one Decide.
type rolloutPass struct {
	node     Node
	st       map[PodID]*PodStatus
	known    map[PodID]*DesiredPod
	now      time.Time
	recs     map[string]*DeploymentRecord
	plan     map[PodID]Target
	waiting  map[PodID]string
	removing map[PodID]string
	// terminating are pods already being removed (Input.Terminating).
	terminating map[PodID]bool
	desired     map[string][]*DesiredPod
	observed    map[string][]*ObservedPod
	workloads   []WorkloadStatus
	changed     []string
	stuck       []string
	wake        time.Time
	done        map[string]bool
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
		r.plan[p.ID] = Target{Spec: p}
	}
}

// keep plans an observed pod to stay as it runs, with the spec it was
// last given when berth knows it, for the reason why.
func (r *rolloutPass) keep(id PodID, why string) {
	if d := r.known[id]; d != nil {
		r.plan[id] = Target{Spec: d, Held: why}
		return
	}
	r.plan[id] = Target{Retain: true, Held: why}
}

// wait is keep for a hold the rollout lifts by itself.
func (r *rolloutPass) wait(id PodID, why string) {
	r.keep(id, why)
	t := r.plan[id]
	t.Waits = true
	r.plan[id] = t
}

// remove notes why an observed pod is left without a target.
func (r *rolloutPass) remove(id PodID, why string) {
	if r.removing == nil {
		r.removing = map[PodID]string{}
	}
	r.removing[id] = why
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

func (r *rolloutPass) wakeAt(t time.Time) { r.wake = Earliest(r.wake, t) }

// status adds the workload's status row, from the pods planned for it.
func (r *rolloutPass) status(o *Object, desired int, minReady int32, cond string) {
	ns := NamespaceOr(o.Metadata.Namespace)
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

// RollingUpdateBounds returns how many pods a Deployment of replicas may
// run above replicas (maxSurge) and below it unavailable
// (maxUnavailable), with Kubernetes' defaults (25% each) and rounding
// (surge up, unavailability down; both zero means one unavailable).
func RollingUpdateBounds(ru *RollingUpdateDeployment, replicas int) (surge, unavail int) {
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
	return surge, unavail
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
	if ok, _ := r.node.Matches(&spec.Template.Spec); !ok {
		replicas = 0
	}
	newSet := map[PodID]bool{}
	for _, p := range newPods {
		newSet[p.ID] = true
	}
	obsSet := map[PodID]bool{}
	var old []*ObservedPod
	terminating := 0
	for _, p := range r.observed[owner] {
		obsSet[p.ID] = true
		switch {
		case newSet[p.ID]:
		case r.terminating[p.ID]:
			// Going already: no Target, so its removal goes on.
			terminating++
		default:
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
	planNew := func(n int, why string) {
		for _, p := range newPods {
			if obsSet[p.ID] {
				r.plan[p.ID] = Target{Spec: p}
			} else if n > 0 {
				r.plan[p.ID] = Target{Spec: p}
				n--
			} else {
				r.waiting[p.ID] = why
			}
		}
	}
	switch {
	case spec.Paused:
		for _, p := range old {
			r.keep(p.ID, reasonPaused)
		}
		planNew(0, reasonPaused)
	case spec.Strategy.Type == "Recreate":
		if len(old)+terminating > 0 {
			// Old pods go first; their removal is the plan.
			planNew(0, "Recreate: starts once every old pod is gone")
			for _, p := range old {
				r.remove(p.ID, "Recreate: every old pod goes before a new one starts")
			}
		} else {
			planNew(replicas, "")
		}
	default:
		surge, unavail := RollingUpdateBounds(spec.Strategy.RollingUpdate, replicas)
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
		staying := 0
		for _, p := range old {
			if canRemove > 0 {
				canRemove--
				r.remove(p.ID, "rolling update: replaced by the new template")
				continue
			}
			staying++
			r.wait(p.ID, fmt.Sprintf("rolling update: stays until new pods are available (maxUnavailable %d, minReadySeconds %d)", unavail, spec.MinReadySeconds))
		}
		// Scale the new pods up within replicas+surge, counting the old
		// pods that stay: the ones removed now leave room at once.
		room := replicas + surge - staying - len(existingNew)
		planNew(max(0, min(room, replicas-len(existingNew))),
			fmt.Sprintf("rolling update: waits for room (maxSurge %d) as old pods go", surge))
	}
	r.progress(o, replicas, len(old)+terminating, availNew)
}

// progress keeps a Deployment's rollout record: when the rollout of the
// current template began and last made progress, whether it completed or
// passed progressDeadlineSeconds.
func (r *rolloutPass) progress(o *Object, replicas, old, availNew int) {
	spec := o.Deployment
	key := NamespaceOr(o.Metadata.Namespace) + "/" + o.Metadata.Name
	hash := ""
	if ps := r.desired[o.Key()]; len(ps) > 0 {
		hash = ps[0].Labels[LabelPodTemplateHash]
	}
	prev := r.recs[key]
	rec := prev
	changed := false
	if rec == nil || rec.Hash != hash {
		rec = &DeploymentRecord{Hash: hash, Since: r.now, LastProgress: r.now}
		changed = true
	} else {
		c := *rec
		rec = &c
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
			r.stuck = append(r.stuck, key)
		} else {
			r.wakeAt(at)
		}
	}
	if changed {
		r.recs[key] = rec
		r.changed = append(r.changed, key)
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
	partition := statefulSetPartition(spec)
	onDelete := spec.UpdateStrategy.Type == "OnDelete"
	// Creation, in order.
	blocked := ""
	for _, p := range want {
		ord := StatefulSetOrdinal(set, p.ID.Name)
		o, exists := obs[ord]
		if !exists {
			if blocked != "" {
				r.waiting[p.ID] = "OrderedReady: waits for " + blocked + " to be ready"
				continue
			}
			r.plan[p.ID] = Target{Spec: p}
			if ordered {
				blocked = p.ID.Name
			}
			continue
		}
		switch {
		case o.Hash == p.Hash:
			r.plan[p.ID] = Target{Spec: p}
		case !o.SandboxReady:
			// A pod whose sandbox is gone (a reboot, a kill mid-way) is
			// made again: below the partition from the template it had,
			// when berth still knows it, else from the current one.
			r.plan[p.ID] = Target{Spec: p}
			if old := r.known[p.ID]; old != nil && old.Hash == o.Hash && ord < partition {
				r.plan[p.ID] = Target{Spec: old}
			}
		case onDelete:
			r.keep(p.ID, "OnDelete: keeps its old template until deleted")
		case ord < partition:
			r.keep(p.ID, fmt.Sprintf("below partition %d: keeps its old template", partition))
		default:
			r.wait(p.ID, "rolling update: highest ordinal first, one at a time, once every pod is ready") // decided below
		}
		if ordered && !r.ready(p.ID) && blocked == "" {
			blocked = p.ID.Name
		}
	}
	// Updates.
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
				r.plan[p.ID] = Target{Spec: p}
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
			r.wait(obs[ord].ID, "OrderedReady: scaled down from the highest ordinal, one at a time, once every pod is ready")
		} else {
			r.remove(obs[ord].ID, "scaled down")
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
			r.keep(p.ID, "OnDelete: keeps its old template until deleted")
			continue
		}
		r.plan[p.ID] = Target{Spec: p}
	}
	r.status(o, len(r.desired[owner]), spec.MinReadySeconds, "")
}

func statefulSetPartition(s *StatefulSetSpec) int {
	if ru := s.UpdateStrategy.RollingUpdate; ru != nil && ru.Partition != nil && s.UpdateStrategy.Type != "OnDelete" {
		return int(*ru.Partition)
	}
	return 0
}

// Blocking returns the desired pods that wait for their rollout and keep
// the host from matching the revision: not those a ReplicaSet's running
// pods stand in for, nor those of a paused Deployment.
func (d Decision) Blocking() map[PodID]string {
	out := map[PodID]string{}
	for id, why := range d.Waiting {
		if why != reasonUnneeded && why != reasonPaused {
			out[id] = why
		}
	}
	return out
}

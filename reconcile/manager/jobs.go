package manager

import (
	"sort"
	"time"

	"berth.dev/berth/reconcile"
)

// Kubernetes' defaults for Jobs and CronJobs.
const (
	defaultBackoffLimit      = 6
	defaultSuccessfulHistory = 3
	defaultFailedHistory     = 1
	// maxMissedSchedules is how many missed start times the CronJob
	// controller counts before it gives up counting (and still starts the
	// most recent one).
	maxMissedSchedules = 100
)

// Job failure reasons.
const (
	ReasonBackoffLimitExceeded = "BackoffLimitExceeded"
)

// syncJobs is the Job controller: it records the pods of each Job that
// finished (and, for restartPolicy OnFailure, their restarts), decides
// when the Job is complete or failed (backoffLimit, activeDeadlineSeconds)
// and writes the records before anything else acts on them. It reports
// whether a record changed and when to look again.
func (m *Manager) syncJobs(x *reconcile.Expansion, recs *reconcile.Records, st map[reconcile.PodID]*reconcile.PodStatus, observed []reconcile.ObservedPod, now time.Time) (bool, time.Time) {
	changed := false
	var next time.Time
	keys := make([]string, 0, len(x.Jobs))
	for k := range x.Jobs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var statuses []reconcile.WorkloadStatus
	for _, key := range keys {
		info := x.Jobs[key]
		rec := info.Record
		dirty := false
		if rec == nil {
			rec = &reconcile.JobRecord{Hash: info.Hash, StartTime: now}
			dirty = true
		}
		if !rec.Finished() {
			dirty = m.jobProgress(info, rec, st, now) || dirty
			if ads := info.Spec.ActiveDeadlineSeconds; ads != nil && !rec.Finished() {
				at := rec.StartTime.Add(time.Duration(*ads) * time.Second)
				if !now.Before(at) {
					rec.Condition, rec.Reason, rec.CompletionTime, dirty = reconcile.JobFailed, reconcile.ReasonDeadlineExceeded, now, true
				} else {
					next = reconcile.Earliest(next, at)
				}
			}
		}
		if dirty {
			if rec.Finished() {
				m.log.Info("job finished", "job", key, "condition", rec.Condition, "reason", rec.Reason)
			}
			if err := m.store.WriteJob(key, rec); err != nil {
				m.log.Warn("write job record", "job", key, "error", err)
				continue
			}
			if recs.Jobs == nil {
				recs.Jobs = map[string]*reconcile.JobRecord{}
			}
			recs.Jobs[key] = rec
			changed = true
		}
		if info.CronJob == "" {
			statuses = append(statuses, jobStatus(info, rec, st))
		}
	}
	// Forget the Jobs the revision no longer declares, so declaring one
	// again runs it again, as deleting and re-creating it would.
	for key := range recs.Jobs {
		if _, ok := x.Jobs[key]; !ok {
			if err := m.store.RemoveJob(key); err != nil {
				m.log.Warn("remove job record", "job", key, "error", err)
				continue
			}
			delete(recs.Jobs, key)
		}
	}
	m.mu.Lock()
	m.jobStatuses = statuses
	m.mu.Unlock()
	return changed, next
}

// jobProgress folds the state of a Job's active pods into its record.
func (m *Manager) jobProgress(info *reconcile.JobInfo, rec *reconcile.JobRecord, st map[reconcile.PodID]*reconcile.PodStatus, now time.Time) bool {
	dirty := false
	ns, _, _ := cutKey(info.Key)
	names := make([]string, 0, len(info.Active))
	for name := range info.Active {
		names = append(names, name)
	}
	sort.Strings(names)
	onFailure := info.Spec.Template.Spec.RestartPolicy == reconcile.RestartOnFailure
	for _, name := range names {
		s := st[reconcile.PodID{Namespace: ns, Name: name}]
		if s == nil {
			continue
		}
		if onFailure {
			if r := s.Restarts(); r > rec.PodRestarts(name) {
				if rec.Restarts == nil {
					rec.Restarts = map[string]int{}
				}
				rec.Failed += r - rec.PodRestarts(name)
				rec.Restarts[name], rec.LastFailure, dirty = r, now, true
			}
		}
		if s.Phase != reconcile.PodSucceeded && s.Phase != reconcile.PodFailed {
			continue
		}
		rec.Pods = append(rec.Pods, reconcile.JobPod{Name: name, Slot: info.Active[name], Phase: s.Phase, Finished: now})
		if s.Phase == reconcile.PodFailed {
			rec.Failed++
			rec.LastFailure = now
		}
		dirty = true
	}
	limit := defaultBackoffLimit
	if info.Spec.BackoffLimit != nil {
		limit = int(*info.Spec.BackoffLimit)
	}
	switch {
	case rec.Succeeded() >= info.Completions:
		rec.Condition, rec.CompletionTime, dirty = reconcile.JobComplete, now, true
	case rec.Failed > limit:
		rec.Condition, rec.Reason, rec.CompletionTime, dirty = reconcile.JobFailed, ReasonBackoffLimitExceeded, now, true
	}
	return dirty
}

func indexAfterSlash(s string) int {
	for i := range s {
		if s[i] == '/' {
			return i + 1
		}
	}
	return 0
}

func jobStatus(info *reconcile.JobInfo, rec *reconcile.JobRecord, st map[reconcile.PodID]*reconcile.PodStatus) reconcile.WorkloadStatus {
	kind, _, name := reconcile.SplitOwner(info.Owner)
	ns, _, _ := cutKey(info.Key)
	w := reconcile.WorkloadStatus{Kind: kind, Namespace: ns, Name: name, Desired: info.Completions, Condition: rec.Condition}
	w.Succeeded = rec.Succeeded()
	for _, p := range rec.Pods {
		if p.Phase == reconcile.PodFailed {
			w.Failed++
		}
	}
	for pod := range info.Active {
		if s := st[reconcile.PodID{Namespace: ns, Name: pod}]; s != nil {
			w.Current++
			if s.Ready {
				w.Ready++
			}
		}
	}
	w.UpToDate, w.Available = w.Current, w.Ready
	return w
}

// syncCronJobs is the CronJob controller. For each CronJob it prunes
// finished Jobs beyond the history limits, and when a scheduled time has
// come (the most recent one, when several were missed while berth was
// down, and only within startingDeadlineSeconds) it makes a Job, unless
// suspended or, with Forbid, a Job still runs; Replace removes the
// running Job first. The schedule it acted on is recorded before the Job
// exists, so a restart neither loses nor repeats a run.
func (m *Manager) syncCronJobs(objs []reconcile.Object, recs *reconcile.Records, st map[reconcile.PodID]*reconcile.PodStatus, now time.Time) time.Time {
	var next time.Time
	seen := map[string]bool{}
	var statuses []reconcile.WorkloadStatus
	if recs.CronJobs == nil {
		recs.CronJobs = map[string]*reconcile.CronJobRecord{}
	}
	for i := range objs {
		o := &objs[i]
		if o.Kind != "CronJob" || o.CronJob == nil {
			continue
		}
		if ok, _ := m.opts.Node.Matches(&o.CronJob.JobTemplate.Spec.Template.Spec); !ok {
			continue
		}
		key := reconcile.NamespaceOr(o.Metadata.Namespace) + "/" + o.Metadata.Name
		seen[key] = true
		n, ws := m.cronJob(o, key, recs, now)
		next = reconcile.Earliest(next, n)
		statuses = append(statuses, ws)
	}
	for key, rec := range recs.CronJobs {
		if seen[key] {
			continue
		}
		ns, _, _ := cutKey(key)
		for _, run := range rec.Runs {
			m.forgetJob(ns+"/"+run.Name, recs)
		}
		if err := m.store.RemoveCronJob(key); err != nil {
			m.log.Warn("remove cronjob record", "cronjob", key, "error", err)
			continue
		}
		delete(recs.CronJobs, key)
	}
	m.mu.Lock()
	m.cronStatuses = statuses
	m.mu.Unlock()
	return next
}

func cutKey(key string) (ns, name string, ok bool) {
	i := indexAfterSlash(key)
	if i == 0 {
		return "", key, false
	}
	return key[:i-1], key[i:], true
}

func (m *Manager) forgetJob(key string, recs *reconcile.Records) {
	if err := m.store.RemoveJob(key); err != nil {
		m.log.Warn("remove job record", "job", key, "error", err)
	}
	delete(recs.Jobs, key)
}

func (m *Manager) cronJob(o *reconcile.Object, key string, recs *reconcile.Records, now time.Time) (time.Time, reconcile.WorkloadStatus) {
	spec := o.CronJob
	ns := reconcile.NamespaceOr(o.Metadata.Namespace)
	ws := reconcile.WorkloadStatus{Kind: "CronJob", Namespace: ns, Name: o.Metadata.Name}
	rec := recs.CronJobs[key]
	dirty := false
	if rec == nil {
		rec = &reconcile.CronJobRecord{FirstSeen: now}
		recs.CronJobs[key] = rec
		dirty = true
	}
	save := func() {
		if err := m.store.WriteCronJob(key, rec); err != nil {
			m.log.Warn("write cronjob record", "cronjob", key, "error", err)
		}
	}
	defer func() {
		if dirty {
			save()
		}
		ws.LastSchedule = rec.LastScheduleTime
	}()

	// History: keep the newest finished runs within the limits.
	succLimit, failLimit := defaultSuccessfulHistory, defaultFailedHistory
	if spec.SuccessfulJobsHistoryLimit != nil {
		succLimit = int(*spec.SuccessfulJobsHistoryLimit)
	}
	if spec.FailedJobsHistoryLimit != nil {
		failLimit = int(*spec.FailedJobsHistoryLimit)
	}
	var active []reconcile.CronRun
	var kept []reconcile.CronRun
	succ, fail := 0, 0
	for i := len(rec.Runs) - 1; i >= 0; i-- {
		run := rec.Runs[i]
		jr := recs.Jobs[ns+"/"+run.Name]
		switch {
		case jr != nil && jr.Condition == reconcile.JobComplete:
			if jr.CompletionTime.After(rec.LastSuccessfulTime) {
				rec.LastSuccessfulTime, dirty = jr.CompletionTime, true
			}
			if succ++; succ > succLimit {
				m.forgetJob(ns+"/"+run.Name, recs)
				dirty = true
				continue
			}
		case jr != nil && jr.Condition == reconcile.JobFailed:
			if fail++; fail > failLimit {
				m.forgetJob(ns+"/"+run.Name, recs)
				dirty = true
				continue
			}
		default:
			active = append(active, run)
		}
		kept = append([]reconcile.CronRun{run}, kept...)
	}
	rec.Runs = kept
	ws.Current = len(active)
	ws.Desired = len(active)

	sched, err := reconcile.ParseSchedule(spec.Schedule, spec.TimeZone)
	if err != nil {
		m.log.Error("cronjob schedule", "cronjob", key, "error", err)
		ws.Condition = "InvalidSchedule"
		return time.Time{}, ws
	}
	if spec.Suspend != nil && *spec.Suspend {
		ws.Condition = "Suspended"
		return time.Time{}, ws
	}
	// The most recent scheduled time that has come since the last one
	// acted on (or since the CronJob appeared).
	from := rec.LastScheduleTime
	if from.IsZero() {
		from = rec.FirstSeen
	}
	var due time.Time
	missed := 0
	for t := sched.Next(from); !t.IsZero() && !t.After(now); t = sched.Next(t) {
		due = t
		if missed++; missed > maxMissedSchedules {
			// Too many to count: jump to the latest one before now.
			for t2 := sched.Next(now.Add(-24 * time.Hour)); !t2.IsZero() && !t2.After(now); t2 = sched.Next(t2) {
				due = t2
			}
			m.log.Warn("too many missed start times; starting the most recent", "cronjob", key)
			break
		}
	}
	next := sched.Next(now)
	if due.IsZero() {
		return next, ws
	}
	if d := spec.StartingDeadlineSeconds; d != nil && now.After(due.Add(time.Duration(*d)*time.Second)) {
		m.log.Info("missed starting window", "cronjob", key, "scheduled", due)
		// Not run; the next time counts from here.
		rec.LastScheduleTime, dirty = due, true
		return next, ws
	}
	switch spec.ConcurrencyPolicy {
	case "Forbid":
		if len(active) > 0 {
			// Kubernetes tries again once the running Job is done.
			return time.Time{}, ws
		}
	case "Replace":
		for _, run := range active {
			m.log.Info("replacing running job", "cronjob", key, "job", run.Name)
			m.forgetJob(ns+"/"+run.Name, recs)
			for i, r := range rec.Runs {
				if r.Name == run.Name {
					rec.Runs = append(rec.Runs[:i], rec.Runs[i+1:]...)
					break
				}
			}
		}
		ws.Current, ws.Desired = 0, 0
	}
	name := reconcile.CronJobRunName(o.Metadata.Name, due)
	rec.Runs = append(rec.Runs, reconcile.CronRun{Name: name, ScheduledTime: due})
	rec.LastScheduleTime, dirty = due, true
	ws.Current++
	ws.Desired++
	m.log.Info("scheduled job", "cronjob", key, "job", name, "scheduled", due)
	return next, ws
}

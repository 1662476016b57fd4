package reconcile

import (
	"fmt"
	"sort"
	"time"

	"github.com/robfig/cron/v3"
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
func (m *Manager) syncJobs(x *expansion, recs *Records, st map[PodID]*PodStatus, observed []ObservedPod, now time.Time) (bool, time.Time) {
	changed := false
	var next time.Time
	keys := make([]string, 0, len(x.jobs))
	for k := range x.jobs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var statuses []WorkloadStatus
	for _, key := range keys {
		info := x.jobs[key]
		rec := info.Record
		dirty := false
		if rec == nil {
			rec = &JobRecord{Hash: info.Hash, StartTime: now}
			dirty = true
		}
		if !rec.finished() {
			dirty = m.jobProgress(info, rec, st, now) || dirty
			if ads := info.Spec.ActiveDeadlineSeconds; ads != nil && !rec.finished() {
				at := rec.StartTime.Add(time.Duration(*ads) * time.Second)
				if !now.Before(at) {
					rec.Condition, rec.Reason, rec.CompletionTime, dirty = JobFailed, ReasonDeadlineExceeded, now, true
				} else {
					next = earliest(next, at)
				}
			}
		}
		if dirty {
			if rec.finished() {
				m.log.Info("job finished", "job", key, "condition", rec.Condition, "reason", rec.Reason)
			}
			if err := m.store.WriteJob(key, rec); err != nil {
				m.log.Warn("write job record", "job", key, "error", err)
				continue
			}
			if recs.Jobs == nil {
				recs.Jobs = map[string]*JobRecord{}
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
		if _, ok := x.jobs[key]; !ok {
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
func (m *Manager) jobProgress(info *jobInfo, rec *JobRecord, st map[PodID]*PodStatus, now time.Time) bool {
	dirty := false
	ns, _, _ := cutKey(info.Key)
	names := make([]string, 0, len(info.Active))
	for name := range info.Active {
		names = append(names, name)
	}
	sort.Strings(names)
	onFailure := info.Spec.Template.Spec.RestartPolicy == RestartOnFailure
	for _, name := range names {
		s := st[PodID{Namespace: ns, Name: name}]
		if s == nil {
			continue
		}
		if onFailure {
			if r := s.Restarts(); r > rec.podRestarts(name) {
				if rec.Restarts == nil {
					rec.Restarts = map[string]int{}
				}
				rec.Failed += r - rec.podRestarts(name)
				rec.Restarts[name], rec.LastFailure, dirty = r, now, true
			}
		}
		if s.Phase != PodSucceeded && s.Phase != PodFailed {
			continue
		}
		rec.Pods = append(rec.Pods, JobPod{Name: name, Slot: info.Active[name], Phase: s.Phase, Finished: now})
		if s.Phase == PodFailed {
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
		rec.Condition, rec.CompletionTime, dirty = JobComplete, now, true
	case rec.Failed > limit:
		rec.Condition, rec.Reason, rec.CompletionTime, dirty = JobFailed, ReasonBackoffLimitExceeded, now, true
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

func (r *JobRecord) podRestarts(name string) int { return r.Restarts[name] }

func jobStatus(info *jobInfo, rec *JobRecord, st map[PodID]*PodStatus) WorkloadStatus {
	kind, _, name := SplitOwner(info.Owner)
	ns, _, _ := cutKey(info.Key)
	w := WorkloadStatus{Kind: kind, Namespace: ns, Name: name, Desired: info.Completions, Condition: rec.Condition}
	w.Succeeded = rec.Succeeded()
	for _, p := range rec.Pods {
		if p.Phase == PodFailed {
			w.Failed++
		}
	}
	for pod := range info.Active {
		if s := st[PodID{Namespace: ns, Name: pod}]; s != nil {
			w.Current++
			if s.Ready {
				w.Ready++
			}
		}
	}
	w.UpToDate, w.Available = w.Current, w.Ready
	return w
}

// cronParser parses standard five-field cron expressions and the macros
// (@yearly, @monthly, @weekly, @daily, @midnight, @hourly), with an
// optional CRON_TZ= or TZ= prefix, as Kubernetes does.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule parses a CronJob's schedule in its time zone (nil: the
// host's local time).
func ParseSchedule(schedule string, timeZone *string) (cron.Schedule, error) {
	sched, err := cronParser.Parse(schedule)
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %w", schedule, err)
	}
	if timeZone != nil && *timeZone != "" {
		loc, err := time.LoadLocation(*timeZone)
		if err != nil {
			return nil, fmt.Errorf("timeZone %q: %w", *timeZone, err)
		}
		if s, ok := sched.(*cron.SpecSchedule); ok {
			s.Location = loc
		}
	}
	return sched, nil
}

// syncCronJobs is the CronJob controller. For each CronJob it prunes
// finished Jobs beyond the history limits, and when a scheduled time has
// come (the most recent one, when several were missed while berth was
// down, and only within startingDeadlineSeconds) it makes a Job, unless
// suspended or, with Forbid, a Job still runs; Replace removes the
// running Job first. The schedule it acted on is recorded before the Job
// exists, so a restart neither loses nor repeats a run.
func (m *Manager) syncCronJobs(objs []Object, recs *Records, st map[PodID]*PodStatus, now time.Time) time.Time {
	var next time.Time
	seen := map[string]bool{}
	var statuses []WorkloadStatus
	if recs.CronJobs == nil {
		recs.CronJobs = map[string]*CronJobRecord{}
	}
	for i := range objs {
		o := &objs[i]
		if o.Kind != "CronJob" || o.CronJob == nil {
			continue
		}
		if ok, _ := m.opts.Node.Matches(&o.CronJob.JobTemplate.Spec.Template.Spec); !ok {
			continue
		}
		key := namespaceOr(o.Metadata.Namespace) + "/" + o.Metadata.Name
		seen[key] = true
		n, ws := m.cronJob(o, key, recs, now)
		next = earliest(next, n)
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

func (m *Manager) forgetJob(key string, recs *Records) {
	if err := m.store.RemoveJob(key); err != nil {
		m.log.Warn("remove job record", "job", key, "error", err)
	}
	delete(recs.Jobs, key)
}

func (m *Manager) cronJob(o *Object, key string, recs *Records, now time.Time) (time.Time, WorkloadStatus) {
	spec := o.CronJob
	ns := namespaceOr(o.Metadata.Namespace)
	ws := WorkloadStatus{Kind: "CronJob", Namespace: ns, Name: o.Metadata.Name}
	rec := recs.CronJobs[key]
	dirty := false
	if rec == nil {
		rec = &CronJobRecord{FirstSeen: now}
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
	var active []CronRun
	var kept []CronRun
	succ, fail := 0, 0
	for i := len(rec.Runs) - 1; i >= 0; i-- {
		run := rec.Runs[i]
		jr := recs.Jobs[ns+"/"+run.Name]
		switch {
		case jr != nil && jr.Condition == JobComplete:
			if jr.CompletionTime.After(rec.LastSuccessfulTime) {
				rec.LastSuccessfulTime, dirty = jr.CompletionTime, true
			}
			if succ++; succ > succLimit {
				m.forgetJob(ns+"/"+run.Name, recs)
				dirty = true
				continue
			}
		case jr != nil && jr.Condition == JobFailed:
			if fail++; fail > failLimit {
				m.forgetJob(ns+"/"+run.Name, recs)
				dirty = true
				continue
			}
		default:
			active = append(active, run)
		}
		kept = append([]CronRun{run}, kept...)
	}
	rec.Runs = kept
	ws.Current = len(active)
	ws.Desired = len(active)

	sched, err := ParseSchedule(spec.Schedule, spec.TimeZone)
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
	name := CronJobRunName(o.Metadata.Name, due)
	rec.Runs = append(rec.Runs, CronRun{Name: name, ScheduledTime: due})
	rec.LastScheduleTime, dirty = due, true
	ws.Current++
	ws.Desired++
	m.log.Info("scheduled job", "cronjob", key, "job", name, "scheduled", due)
	return next, ws
}

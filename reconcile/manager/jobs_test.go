package manager_test

import (
	fx "berth.dev/berth/reconcile/reconciletest"
	"context"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/reconcile"
)

func jobObj(name string, completions, parallelism int32, cmd ...string) reconcile.Object {
	o := fx.Workload("Job", name)
	o.APIVersion = "batch/v1"
	o.Job = &reconcile.JobSpec{Completions: fx.Ptr(completions), Parallelism: fx.Ptr(parallelism), Template: fx.Template(name)}
	o.Job.Template.Spec.RestartPolicy = reconcile.RestartNever
	o.Job.Template.Spec.Containers[0].Command, o.Job.Template.Spec.Containers[0].Args = cmd, nil
	return o
}

// created lists the pods made so far, in order.
func (f *fakeTime) created() []string {
	var out []string
	for _, c := range f.rt.Calls() {
		if name, ok := strings.CutPrefix(c, "CreateSandbox default/"); ok {
			if len(out) == 0 || out[len(out)-1] != name {
				out = append(out, name)
			}
		}
	}
	return out
}

func TestJobBackoffLimit(t *testing.T) {
	f := runFakeTime(t, t.TempDir())
	j := jobObj("fails", 1, 1, "false")
	j.Job.BackoffLimit = fx.Ptr(int32(2))
	f.sync("r1", j)
	key := "Job/default/fails"
	f.until("job failed", 200, func() bool { return f.workload(key).Condition == reconcile.JobFailed }, nil)
	if got := f.created(); len(got) != 3 {
		t.Fatalf("pods made: %v, want 3 attempts", got)
	}
	// Kubernetes' backoff between attempts: 10 s, then 20 s. The failed
	// pods are kept, with the (manual) time they were made.
	pods, _ := f.rt.List(context.Background())
	var attempts []time.Time
	for _, p := range pods {
		attempts = append(attempts, p.CreatedAt)
	}
	sort.Slice(attempts, func(i, j int) bool { return attempts[i].Before(attempts[j]) })
	if len(attempts) != 3 {
		t.Fatalf("%d pods kept, want the 3 failed attempts", len(attempts))
	}
	if d1, d2 := attempts[1].Sub(attempts[0]), attempts[2].Sub(attempts[1]); d1 < 10*time.Second || d2 < 20*time.Second || d2 > 22*time.Second {
		t.Errorf("attempts %s and %s apart, want 10s and 20s", d1, d2)
	}
	for range 60 {
		f.advance(time.Second)
	}
	if got := f.created(); len(got) != 3 {
		t.Errorf("a failed job ran again: %v", got)
	}
}

func TestIndexedJobRunsEachIndexOnce(t *testing.T) {
	dir := t.TempDir()
	f := runFakeTime(t, dir)
	j := jobObj("batch", 5, 2, "true")
	j.Job.CompletionMode = "Indexed"
	f.sync("r1", j)
	key := "Job/default/batch"
	f.until("job complete", 60, func() bool { return f.workload(key).Condition == reconcile.JobComplete }, func() {
		running := 0
		pods, _ := f.rt.List(context.Background())
		for _, p := range pods {
			for _, c := range p.Containers {
				if c.State != reconcile.StateExited {
					running++
				}
			}
		}
		if running > 2 {
			t.Fatalf("%d pods at once, parallelism is 2", running)
		}
	})
	re := regexp.MustCompile(`^batch-(\d)-[a-z0-9]{5}$`)
	var idx []string
	for _, name := range f.created() {
		m := re.FindStringSubmatch(name)
		if m == nil {
			t.Fatalf("pod name %q", name)
		}
		idx = append(idx, m[1])
	}
	sort.Strings(idx)
	if diff := cmp.Diff([]string{"0", "1", "2", "3", "4"}, idx); diff != "" {
		t.Errorf("indexes run (-want +got):\n%s", diff)
	}
	if w := f.workload(key); w.Succeeded != 5 {
		t.Errorf("status %+v", w)
	}
}

func TestCompletedJobStaysCompletedAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	f := runFakeTime(t, dir)
	j := jobObj("once", 1, 1, "true")
	f.sync("r1", j)
	f.until("complete", 30, func() bool { return f.workload("Job/default/once").Condition == reconcile.JobComplete }, nil)
	// A new agent on the same runtime and state directory, at a later
	// revision that still declares the Job.
	f.stop()
	f.rt.ResetCalls()
	g := runFakeTimeOn(t, dir, f.rt, f.clock)
	g.sync("r2", j, fx.PodObj("other", "1d"))
	g.until("status", 10, func() bool { return g.workload("Job/default/once").Condition == reconcile.JobComplete }, nil)
	for range 10 {
		g.advance(time.Second)
	}
	for _, c := range f.rt.MutatingCalls() {
		if strings.Contains(c, "once") {
			t.Errorf("the completed job was touched after a restart: %v", f.rt.MutatingCalls())
			break
		}
	}
	// The pod is still there, shown as Completed.
	for _, p := range g.m.Pods() {
		if strings.HasPrefix(p.ID.Name, "once-") && p.Display() != "Completed" {
			t.Errorf("job pod shows %q", p.Display())
		}
	}
}

func TestCronJobScheduleAndForbid(t *testing.T) {
	f := runFakeTime(t, t.TempDir())
	c := fx.Workload("CronJob", "tick")
	c.APIVersion = "batch/v1"
	c.CronJob = &reconcile.CronJobSpec{
		Schedule: "*/5 * * * *", ConcurrencyPolicy: "Forbid",
		JobTemplate: reconcile.JobTemplateSpec{Spec: *jobObj("x", 1, 1, "sleep", "1d").Job},
	}
	f.sync("r1", c)
	// t0 is 12:00:00; nothing runs before 12:05.
	for range 4 {
		f.advance(time.Minute)
	}
	if got := f.created(); len(got) != 0 {
		t.Fatalf("ran before its schedule: %v", got)
	}
	f.advance(time.Minute) // 12:05
	eventually(t, "first run", func() bool { return len(f.created()) == 1 })
	want := reconcile.CronJobRunName("tick", t0.Add(5*time.Minute))
	if got := f.created()[0]; !strings.HasPrefix(got, want+"-") {
		t.Errorf("first run pod %q, want a pod of Job %s", got, want)
	}
	// Forbid: while it runs, 12:10 and 12:15 start nothing.
	for range 10 {
		f.advance(time.Minute)
	}
	if got := f.created(); len(got) != 1 {
		t.Fatalf("Forbid started %v while a run was active", got)
	}
	// The run finishes: the missed 12:15 run starts at once.
	pods, _ := f.rt.List(context.Background())
	if err := f.rt.Kill(pods[0].ID, reconcile.AppContainer, "main", 0); err != nil {
		t.Fatal(err)
	}
	// One resync notices the exit; the rest follows from events.
	f.advance(time.Second)
	eventually(t, "second run", func() bool { return len(f.created()) == 2 })
	want = reconcile.CronJobRunName("tick", t0.Add(15*time.Minute))
	if got := f.created()[1]; !strings.HasPrefix(got, want+"-") {
		t.Errorf("second run pod %q, want a pod of Job %s", got, want)
	}
}

func TestParseSchedule(t *testing.T) {
	tz := "Europe/Berlin"
	s, err := reconcile.ParseSchedule("@daily", &tz)
	if err != nil {
		t.Fatal(err)
	}
	got := s.Next(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC))
	if want := time.Date(2026, 6, 1, 22, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("next @daily in Berlin after noon UTC = %s, want %s", got.UTC(), want)
	}
	if _, err := reconcile.ParseSchedule("61 * * * *", nil); err == nil {
		t.Error("minute 61 accepted")
	}
}

func cronObj(policy string, cmd ...string) reconcile.Object {
	c := fx.Workload("CronJob", "tick")
	c.APIVersion = "batch/v1"
	c.CronJob = &reconcile.CronJobSpec{
		Schedule: "*/5 * * * *", ConcurrencyPolicy: policy,
		JobTemplate: reconcile.JobTemplateSpec{Spec: *jobObj("x", 1, 1, cmd...).Job},
	}
	return c
}

// runsMade lists the Jobs whose pods were made, by name.
func (f *fakeTime) runsMade() []string {
	var out []string
	seen := map[string]bool{}
	for _, pod := range f.created() {
		job := pod[:strings.LastIndex(pod, "-")]
		if !seen[job] {
			seen[job] = true
			out = append(out, job)
		}
	}
	return out
}

func runName(d time.Duration) string { return reconcile.CronJobRunName("tick", t0.Add(d)) }

func TestCronJobMissedRuns(t *testing.T) {
	f := runFakeTime(t, t.TempDir())
	f.sync("r1", cronObj("Allow", "true"))
	f.untilStep("first run", 30*time.Second, 20, func() bool { return len(f.runsMade()) == 1 }, nil)
	// The host is down for an hour: of the twelve missed times, only the
	// most recent runs.
	f.advance(time.Hour)
	f.until("catch-up run", 10, func() bool { return len(f.runsMade()) == 2 }, nil)
	for range 5 {
		f.advance(10 * time.Second)
	}
	if diff := cmp.Diff([]string{runName(5 * time.Minute), runName(65 * time.Minute)}, f.runsMade()); diff != "" {
		t.Errorf("runs (-want +got):\n%s", diff)
	}
}

func TestCronJobStartingDeadline(t *testing.T) {
	f := runFakeTime(t, t.TempDir())
	c := cronObj("Allow", "true")
	c.CronJob.StartingDeadlineSeconds = fx.Ptr(int64(60))
	f.sync("r1", c)
	// Down from before 12:05 until 12:07: 12:05 is past its deadline.
	f.advance(7 * time.Minute)
	for range 5 {
		f.advance(10 * time.Second)
	}
	if got := f.runsMade(); len(got) != 0 {
		t.Fatalf("ran %v past the starting deadline", got)
	}
	f.untilStep("12:10 run", 30*time.Second, 20, func() bool { return len(f.runsMade()) == 1 }, nil)
	if got := f.runsMade()[0]; got != runName(10*time.Minute) {
		t.Errorf("run %s, want the 12:10 one", got)
	}
}

func TestCronJobReplaceSuspendHistory(t *testing.T) {
	t.Run("Replace", func(t *testing.T) {
		f := runFakeTime(t, t.TempDir())
		f.sync("r1", cronObj("Replace", "sleep", "1d"))
		f.untilStep("two runs", 30*time.Second, 30, func() bool { return len(f.runsMade()) == 2 }, nil)
		eventually(t, "the first run removed", func() bool {
			pods, _ := f.rt.List(context.Background())
			return len(pods) == 1 && strings.HasPrefix(pods[0].ID.Name, runName(10*time.Minute))
		})
	})
	t.Run("suspend", func(t *testing.T) {
		f := runFakeTime(t, t.TempDir())
		c := cronObj("Allow", "true")
		c.CronJob.Suspend = fx.Ptr(true)
		f.sync("r1", c)
		for range 12 {
			f.advance(time.Minute)
		}
		if got := f.runsMade(); len(got) != 0 {
			t.Fatalf("a suspended CronJob ran %v", got)
		}
	})
	t.Run("history", func(t *testing.T) {
		f := runFakeTime(t, t.TempDir())
		c := cronObj("Allow", "true")
		c.CronJob.SuccessfulJobsHistoryLimit = fx.Ptr(int32(2))
		f.sync("r1", c)
		f.untilStep("four runs", 30*time.Second, 60, func() bool { return len(f.runsMade()) == 4 }, nil)
		eventually(t, "two runs kept", func() bool {
			pods, _ := f.rt.List(context.Background())
			if len(pods) != 2 {
				var names []string
				for _, p := range pods {
					names = append(names, p.ID.Name)
				}
				t.Logf("pods %v", names)
			}
			return len(pods) == 2
		})
	})
}

func TestJobOnFailureRestartsCountTowardBackoffLimit(t *testing.T) {
	f := runFakeTime(t, t.TempDir())
	j := jobObj("flaky", 1, 1, "false")
	j.Job.Template.Spec.RestartPolicy = reconcile.RestartOnFailure
	j.Job.BackoffLimit = fx.Ptr(int32(1))
	f.sync("r1", j)
	f.until("job failed", 120, func() bool { return f.workload("Job/default/flaky").Condition == reconcile.JobFailed }, nil)
	if got := f.created(); len(got) != 1 {
		t.Errorf("pods %v: OnFailure restarts in place", got)
	}
	eventually(t, "the failed job's pod removed", func() bool {
		pods, _ := f.rt.List(context.Background())
		return len(pods) == 0
	})
}

// TestObjectsWithoutNamespace runs workloads whose metadata names no
// namespace: their pods are in "default" and their status counts them.
func TestObjectsWithoutNamespace(t *testing.T) {
	f := runFakeTime(t, t.TempDir())
	d := fx.Deployment("web", 2, "1d")
	j := jobObj("once", 1, 1, "true")
	s := fx.Workload("StatefulSet", "db")
	s.StatefulSet = &reconcile.StatefulSetSpec{Replicas: fx.Ptr(int32(1)), Template: fx.Template("db")}
	for _, o := range []*reconcile.Object{&d, &j, &s} {
		o.Metadata.Namespace = ""
	}
	f.sync("r1", d, j, s)
	f.until("all ready", 20, func() bool {
		return f.workload("Deployment/default/web").Ready == 2 &&
			f.workload("StatefulSet/default/db").Ready == 1 &&
			f.workload("Job/default/once").Condition == reconcile.JobComplete
	}, nil)
	if w := f.workload("Job/default/once"); w.Succeeded != 1 {
		t.Errorf("job status %+v", w)
	}
}

// TestReboot: after the host restarts (sandboxes gone, no task running)
// and berth with it, pods come back, a completed Job stays completed and
// an OnDelete StatefulSet's old pod is made again from the new template.
func TestReboot(t *testing.T) {
	dir := t.TempDir()
	f := runFakeTime(t, dir)
	ds := func(arg string) reconcile.Object {
		o := fx.Workload("StatefulSet", "db")
		o.StatefulSet = &reconcile.StatefulSetSpec{Replicas: fx.Ptr(int32(1)), Template: fx.Template("db", arg)}
		o.StatefulSet.UpdateStrategy.Type = "OnDelete"
		return o
	}
	job := jobObj("once", 1, 1, "true")
	f.sync("r1", fx.PodObj("web", "1d"), job, ds("1d"))
	f.until("running and complete", 20, func() bool {
		return f.workload("Job/default/once").Condition == reconcile.JobComplete && f.workload("StatefulSet/default/db").Ready == 1 &&
			len(runningPods(f.rt)) == 2
	}, nil)
	f.sync("r2", fx.PodObj("web", "1d"), job, ds("2d")) // OnDelete: db-0 keeps 1d
	for range 3 {
		f.advance(time.Second)
	}
	if w := f.workload("StatefulSet/default/db"); w.UpToDate != 0 {
		t.Fatalf("OnDelete updated db-0 before the reboot: %+v", w)
	}
	jobPods := 0
	for _, n := range f.created() {
		if strings.HasPrefix(n, "once-") {
			jobPods++
		}
	}

	f.stop()
	f.rt.Reboot()
	g := runFakeTimeOn(t, dir, f.rt, f.clock)
	g.sync("r2", fx.PodObj("web", "1d"), job, ds("2d"))
	g.until("back after the reboot", 30, func() bool {
		return cmp.Equal(runningPods(f.rt), []string{"db-0", "web"}) && g.workload("StatefulSet/default/db").UpToDate == 1
	}, nil)
	again := 0
	for _, n := range g.created() {
		if strings.HasPrefix(n, "once-") {
			again++
		}
	}
	if again != jobPods {
		t.Errorf("the completed job made %d pods after the reboot", again-jobPods)
	}
	for _, p := range g.m.Pods() {
		if p.ID.Name == "web" && p.Restarts() != 1 {
			t.Errorf("web: %d restarts after a reboot, want 1", p.Restarts())
		}
	}
}

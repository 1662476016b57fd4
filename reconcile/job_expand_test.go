package reconcile

import (
	"regexp"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const testImage = "example.local/busybox:1"

func testJob(name string, completions, parallelism int32, indexed bool) Object {
	o := Object{
		TypeMeta: TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		Metadata: ObjectMeta{Name: name, Namespace: "default"},
		Job: &JobSpec{Completions: &completions, Parallelism: &parallelism, Template: PodTemplateSpec{
			Spec: PodSpec{RestartPolicy: RestartNever, Containers: []Container{{Name: "main", Image: testImage, Command: []string{"true"}}}},
		}},
	}
	if indexed {
		o.Job.CompletionMode = "Indexed"
	}
	return o
}

func jobHashOf(t *testing.T, o Object) string {
	t.Helper()
	x, err := ExpandAll([]Object{o}, "r", ExpandOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return x.Jobs["default/"+o.Metadata.Name].Hash
}

func envOf(p DesiredPod, name string) string {
	for _, e := range p.Spec.Containers[0].Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func TestExpandIndexedJob(t *testing.T) {
	j := testJob("batch", 3, 2, true)
	pods, err := Expand([]Object{j}, "r", ExpandOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods) != 2 {
		t.Fatalf("got %d pods, want 2 (parallelism)", len(pods))
	}
	for _, p := range pods {
		i := envOf(p, EnvJobCompletionIndex)
		if ok, _ := regexp.MatchString(`^batch-`+i+`-[a-z0-9]{5}$`, p.ID.Name); !ok || p.Labels[LabelJobName] != "batch" {
			t.Errorf("pod %s (labels %v) has index %q", p.ID.Name, p.Labels, i)
		}
	}
	// Index 0 succeeded: it is kept as finished, index 2 starts.
	rec := &JobRecord{Hash: jobHashOf(t, j), Pods: []JobPod{{Name: pods[0].ID.Name, Slot: 0, Phase: PodSucceeded}}}
	recs := &Records{Jobs: map[string]*JobRecord{"default/batch": rec}}
	got := func(now time.Time) []string {
		pods, err := Expand([]Object{j}, "r", ExpandOptions{Records: recs, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, p := range pods {
			out = append(out, envOf(p, EnvJobCompletionIndex)+":"+string(p.Finished))
		}
		sort.Strings(out)
		return out
	}
	if diff := cmp.Diff([]string{"0:Succeeded", "1:", "2:"}, got(time.Time{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// A failure of index 1: its next attempt waits out the backoff.
	rec.Pods = append(rec.Pods, JobPod{Name: "batch-1-xxxxx", Slot: 1, Phase: PodFailed})
	rec.Failed, rec.LastFailure = 1, time.Unix(1000, 0)
	if diff := cmp.Diff([]string{"0:Succeeded", "1:Failed", "2:"}, got(time.Unix(1005, 0))); diff != "" {
		t.Errorf("during backoff (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"0:Succeeded", "1:", "1:Failed", "2:"}, got(time.Unix(1010, 0))); diff != "" {
		t.Errorf("after backoff (-want +got):\n%s", diff)
	}
	// Complete: only the finished pods; after the ttl, nothing; and a
	// changed spec is a new Job.
	rec.Condition, rec.CompletionTime = JobComplete, time.Unix(2000, 0)
	if diff := cmp.Diff([]string{"0:Succeeded", "1:Failed"}, got(time.Unix(2001, 0))); diff != "" {
		t.Errorf("complete (-want +got):\n%s", diff)
	}
	ttl := int32(60)
	j.Job.TTLSecondsAfterFinished = &ttl
	rec.Hash = jobHashOf(t, j)
	if g := got(time.Unix(2060, 0)); len(g) != 0 {
		t.Errorf("after ttl: %v", g)
	}
	j.Job.Template.Spec.Containers[0].Command = []string{"false"}
	if g := got(time.Unix(2060, 0)); len(g) != 2 {
		t.Errorf("changed spec: %v, want a new run of 2 pods", g)
	}
}

func TestExpandCronJobRuns(t *testing.T) {
	j := testJob("x", 1, 1, false)
	o := Object{
		TypeMeta: TypeMeta{APIVersion: "batch/v1", Kind: "CronJob"},
		Metadata: ObjectMeta{Name: "nightly", Namespace: "default"},
		CronJob:  &CronJobSpec{Schedule: "@daily", JobTemplate: JobTemplateSpec{Spec: *j.Job}},
	}
	at := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	run := CronJobRunName("nightly", at)
	recs := &Records{CronJobs: map[string]*CronJobRecord{"default/nightly": {Runs: []CronRun{{Name: run, ScheduledTime: at}}}}}
	x, err := ExpandAll([]Object{o}, "r", ExpandOptions{Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	if len(x.Pods) != 1 || x.Pods[0].Owner != "Job/default/"+run || x.Jobs["default/"+run].CronJob != "CronJob/default/nightly" {
		t.Fatalf("pods %+v", x.Pods)
	}
	if run != "nightly-29455200" {
		t.Errorf("run name %q", run)
	}
	if x, _ := ExpandAll([]Object{o}, "r", ExpandOptions{}); len(x.Pods) != 0 {
		t.Errorf("a CronJob without runs expanded to %d pods", len(x.Pods))
	}
}

func TestExpandWorkQueueJob(t *testing.T) {
	j := testJob("queue", 1, 3, false)
	j.Job.Completions = nil
	pods, err := Expand([]Object{j}, "r", ExpandOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods) != 3 {
		t.Fatalf("%d pods, want parallelism 3", len(pods))
	}
	// One success completes it (the controller's rule): nothing more runs.
	rec := &JobRecord{Hash: jobHashOf(t, j), Pods: []JobPod{{Name: pods[1].ID.Name, Slot: 1, Phase: PodSucceeded}}}
	if rec.Succeeded() < 1 {
		t.Fatal("success not counted")
	}
	rec.Condition = JobComplete
	pods, err = Expand([]Object{j}, "r", ExpandOptions{Records: &Records{Jobs: map[string]*JobRecord{"default/queue": rec}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods) != 1 || pods[0].Finished != PodSucceeded {
		t.Errorf("complete work queue: %d pods", len(pods))
	}
}

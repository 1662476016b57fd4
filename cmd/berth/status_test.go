package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/reconcile"
)

func TestWriteStatus(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	running := reconcile.ContainerStatus{Name: "main", Kind: reconcile.AppContainer, State: reconcile.Running, Ready: true, Started: true}
	rep := &statusReport{
		Pods: []reconcile.PodStatus{
			{ID: reconcile.PodID{Namespace: "default", Name: "web-0"}, Phase: reconcile.PodRunning, Ready: true, IP: "10.87.0.2",
				CreatedAt: now.Add(-90 * time.Second), Revision: "0123456789abcdef",
				Containers: []reconcile.ContainerStatus{running}},
			{ID: reconcile.PodID{Namespace: "default", Name: "crash"}, Phase: reconcile.PodRunning, CreatedAt: now.Add(-2 * time.Hour),
				Containers: []reconcile.ContainerStatus{{Name: "main", Kind: reconcile.AppContainer, State: reconcile.Waiting,
					Reason: reconcile.ReasonCrashLoopBackOff, RestartCount: 5}}},
			{ID: reconcile.PodID{Namespace: "default", Name: "oom"}, Phase: reconcile.PodFailed, CreatedAt: now.Add(-3 * 24 * time.Hour),
				Containers: []reconcile.ContainerStatus{{Name: "main", Kind: reconcile.AppContainer, State: reconcile.Terminated,
					Reason: reconcile.ReasonOOMKilled, ExitCode: 137}}},
			{ID: reconcile.PodID{Namespace: "default", Name: "job-x"}, Phase: reconcile.PodSucceeded,
				Containers: []reconcile.ContainerStatus{{Name: "main", Kind: reconcile.AppContainer, State: reconcile.Terminated, Reason: "Completed"}}},
			{ID: reconcile.PodID{Namespace: "default", Name: "init"}, Phase: reconcile.PodPending,
				InitContainers: []reconcile.ContainerStatus{
					{Name: "a", Kind: reconcile.InitContainer, State: reconcile.Terminated, Reason: "Completed"},
					{Name: "b", Kind: reconcile.InitContainer, State: reconcile.Running, Started: true},
					{Name: "c", Kind: reconcile.InitContainer, State: reconcile.Waiting, Reason: reconcile.ReasonPodInitializing},
				},
				Containers: []reconcile.ContainerStatus{{Name: "main", Kind: reconcile.AppContainer, State: reconcile.Waiting, Reason: reconcile.ReasonImagePullBackOff}}},
		},
		Workloads: []reconcile.WorkloadStatus{
			{Kind: "Deployment", Namespace: "default", Name: "web", Desired: 3, Ready: 2, UpToDate: 1, Available: 2, Condition: "Progressing"},
			{Kind: "Job", Namespace: "default", Name: "job", Desired: 5, Succeeded: 2},
		},
	}
	var b bytes.Buffer
	if err := writeStatus(&b, rep, now); err != nil {
		t.Fatal(err)
	}
	want := `NAMESPACE   NAME    READY   STATUS             RESTARTS   AGE   IP          REVISION
default     web-0   1/1     Running            0          1m    10.87.0.2   0123456789ab
default     crash   0/1     CrashLoopBackOff   5          2h    -           -
default     oom     0/1     OOMKilled          0          3d    -           -
default     job-x   0/1     Completed          0          -     -           -
default     init    0/1     Init:2/3           0          -     -           -

NAMESPACE   WORKLOAD         DESIRED   READY   UP-TO-DATE   AVAILABLE   CONDITION
default     deployment/web   3         2       1            2           Progressing
default     job/job          5         0       0            0           2/5 succeeded
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
}

func TestLabelsFlag(t *testing.T) {
	var l labelsFlag
	for _, v := range []string{"zone=eu-1", "disk=ssd,gpu=", " arch=arm64 "} {
		if err := l.Set(v); err != nil {
			t.Fatalf("Set(%q): %v", v, err)
		}
	}
	want := labelsFlag{"zone": "eu-1", "disk": "ssd", "gpu": "", "arch": "arm64"}
	if diff := cmp.Diff(want, l); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if got := l.String(); got != "arch=arm64,disk=ssd,gpu=,zone=eu-1" {
		t.Errorf("String() = %q", got)
	}
	for _, bad := range []string{"novalue", "=x", ""} {
		var l labelsFlag
		if err := l.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
}

package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestVetTwelveProblems checks that twelve distinct problems in four files,
// several of which need the whole revision to be seen (a missing ConfigMap,
// a host port bound twice), are all reported in one vet run, each at its
// own line, with the file and line in JSON too.
func TestVetTwelveProblems(t *testing.T) {
	job := "  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers: [{name: a, image: busybox}]\n"
	dir := writeRepo(t, map[string]string{
		"01-cron.yaml": "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: mars}\nspec:\n  schedule: \"61 25 * * *\"\n" + job +
			"---\napiVersion: batch/v1\nkind: CronJob\nmetadata: {name: olympus}\nspec:\n  schedule: \"0 3 * * *\"\n  timeZone: Mars/Olympus\n" + job,
		"02-pod.yaml": `apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: a
    image: busybox
    ports: [{containerPort: 80, hostPort: 8080}]
    envFrom: [{configMapRef: {name: settings}}]
    resources:
      requests: {cpu: "-1", memory: 1e400}
      limits: {ephemeral-storage: 1Gi}
  volumes: [{name: scratch, emptyDir: {sizeLimit: 1Gi}}]
`,
		"03-more.yaml": `apiVersion: v1
kind: Pod
metadata: {name: twice}
metadata: {name: again}
spec: {containers: [{name: a, image: busybox}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web2}
spec:
  containers:
  - name: a
    image: busybox
    ports: [{containerPort: 80, hostPort: 8080}]
`,
		"04-sets.yaml": `apiVersion: apps/v1
kind: StatefulSet
metadata: {name: minio}
spec:
  replicas: 3
  selector: {matchLabels: {app: minio, tier: db}}
  template:
    metadata: {labels: {app: minio}}
    spec:
      containers: [{name: minio, image: minio/minio, ports: [{containerPort: 9000, hostPort: 9000}]}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: sel}
spec:
  selector:
    matchLabels: {app: sel}
    matchExpressions: [{key: tier, operator: Exists, values: [front]}]
  template:
    metadata: {labels: {app: sel}}
    spec: {containers: [{name: a, image: busybox}]}
`,
	})
	want := []string{
		"./01-cron.yaml:5:13: CronJob/default/mars: spec.schedule: not a cron schedule",
		"./01-cron.yaml:18:13: CronJob/default/olympus: spec.timeZone: unknown time zone \"Mars/Olympus\"",
		"./02-pod.yaml:9:37: Pod/default/web: spec.containers.0.envFrom.0.configMapRef.name: ConfigMap \"settings\" is not declared in this revision",
		"./02-pod.yaml:11:23: Pod/default/web: spec.containers.0.resources.requests.cpu: must not be negative",
		"./02-pod.yaml:11:37: Pod/default/web: spec.containers.0.resources.requests.memory: 1e400 is too large",
		"./02-pod.yaml:12:35: Pod/default/web: spec.containers.0.resources.limits.\"ephemeral-storage\": field not supported by berth",
		"./02-pod.yaml:13:51: Pod/default/web: spec.volumes.0.emptyDir.sizeLimit: field not supported by berth",
		"./03-more.yaml:4:1: duplicate key \"metadata\"",
		"./03-more.yaml:14:13: Pod/default/web2: spec.containers.0.ports.0: host port 8080/TCP is already bound by Pod/default/web",
		"./04-sets.yaml:6:46: StatefulSet/default/minio: spec.selector.matchLabels.tier: selector tier=db does not match the template",
		"./04-sets.yaml:10:62: StatefulSet/default/minio: spec.template.spec.containers.0.ports.0: host port 9000/TCP would be bound by each of the 3 pods",
		"./04-sets.yaml:18:24: Deployment/default/sel: spec.selector.matchExpressions.0: values: Invalid value",
	}
	code, out, errOut := vet(t, dir)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 1 || len(lines) != len(want) || !strings.Contains(errOut, "12 errors") {
		t.Errorf("exit %d, %d lines, want 1 and 12 errors:\n%s\n%s", code, len(lines), out, errOut)
	}
	for i, w := range want {
		if i >= len(lines) || !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d: want prefix %q, output:\n%s", i+1, w, out)
		}
	}
	_, out, _ = vet(t, "-o", "json", dir)
	var rep vetReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Diagnostics) != len(want) {
		t.Fatalf("json: %v, %d diagnostics", err, len(rep.Diagnostics))
	}
	for _, d := range rep.Diagnostics {
		if d.File == "" || d.Line == 0 {
			t.Errorf("json diagnostic without file and line: %+v", d)
		}
	}
}

// TestVetEmptyFile checks that a zero-byte file is named with a position,
// in text and in JSON.
func TestVetEmptyFile(t *testing.T) {
	dir := writeRepo(t, map[string]string{"empty.yaml": "", "web.yaml": strings.Replace(pod, "%s", "web", 1)})
	code, _, errOut := vet(t, dir)
	if code != 0 || !strings.Contains(errOut, "1 warning") {
		t.Errorf("exit %d, want 0 with a warning: %s", code, errOut)
	}
	code, out, errOut := vet(t, writeRepo(t, map[string]string{"empty.json": " \n"}))
	if code != 0 || !strings.Contains(out+errOut, "./empty.json:1:1: warning: empty file") {
		t.Errorf("exit %d, want 0 with a warning: %s", code, errOut)
	}
	_, out, _ = vet(t, "-o", "json", dir)
	var rep vetReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Diagnostics) != 1 ||
		rep.Diagnostics[0].File != "./empty.yaml" || rep.Diagnostics[0].Line != 1 || rep.Diagnostics[0].Column != 1 {
		t.Errorf("json: %v, %+v", err, rep.Diagnostics)
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/schema"
)

// writeRepo writes files into a new directory and returns it.
func writeRepo(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func vet(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(append([]string{"vet"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

const pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: %s}\nspec:\n  containers:\n  - name: app\n    image: busybox\n"

// TestVetTenMistakes checks that ten mistakes in ten files are all
// reported in one run, each at its line of the user's file.
func TestVetTenMistakes(t *testing.T) {
	p := func(name, extra string) string {
		return strings.Replace(pod, "%s", name, 1) + extra
	}
	dir := writeRepo(t, map[string]string{
		"01-image.yaml":    "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: app\n",
		"02-name.yaml":     strings.Replace(pod, "%s", "Bad_Name", 1),
		"03-port.yaml":     p("c", "    ports: [{containerPort: 70000}]\n"),
		"04-policy.yaml":   p("d", "  restartPolicy: Sometimes\n"),
		"05-unknown.yaml":  p("e", "    imagePulPolicy: Always\n"),
		"06-mount.yaml":    p("f", "    volumeMounts: [{name: data, mountPath: /data}]\n"),
		"07-pvc.yaml":      p("g", "  volumes: [{name: d, persistentVolumeClaim: {claimName: x}}]\n"),
		"08-cron.yaml":     "apiVersion: batch/v1beta1\nkind: CronJob\nmetadata: {name: h}\nspec: {}\n",
		"09-env.yaml":      p("i", "    env: [{name: A, value: x, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]\n"),
		"10-selector.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: j}\nspec:\n  selector: {matchLabels: {app: j}}\n  template:\n    metadata: {labels: {app: k}}\n    spec: {containers: [{name: c, image: busybox}]}\n",
	})
	code, out, errOut := vet(t, dir)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr: %s", code, errOut)
	}
	want := []string{
		"./01-image.yaml:6:5: Pod/default/a: spec.containers.0.image: required field is missing",
		"./02-name.yaml:3:18: Pod/default/Bad_Name: metadata.name: must be a DNS-1123 subdomain: lower-case alphanumerics, '-' or '.', starting and ending with an alphanumeric",
		"./03-port.yaml:8:29: Pod/default/c: spec.containers.0.ports.0.containerPort: must be at most 65535",
		"./04-policy.yaml:8:18: Pod/default/d: spec.restartPolicy: must be one of Always, OnFailure, Never",
		`./05-unknown.yaml:8:5: Pod/default/e: spec.containers.0.imagePulPolicy: field not supported by berth (did you mean "imagePullPolicy"?)`,
		`./06-mount.yaml:8:27: Pod/default/f: spec.containers.0.volumeMounts.0.name: volume "data" is not declared in spec.volumes`,
		"./07-pvc.yaml:8:23: Pod/default/g: spec.volumes.0.persistentVolumeClaim: field not supported by berth: a host has no PersistentVolumes; use a StatefulSet's volumeClaimTemplates (a directory per pod) or a hostPath volume",
		`./08-cron.yaml:1:13: CronJob/default/h: apiVersion: batch/v1beta1 CronJob is no longer served by Kubernetes; use apiVersion "batch/v1"`,
		"./09-env.yaml:8:42: Pod/default/i: spec.containers.0.env.0.valueFrom: must not be set together with value",
		"./10-selector.yaml:5:33: Deployment/default/j: spec.selector.matchLabels.app: selector app=j does not match the template: spec.template.metadata.labels has app=k",
	}
	if d := cmp.Diff(want, strings.Split(strings.TrimSpace(out), "\n")); d != "" {
		t.Errorf("vet output (-want +got):\n%s", d)
	}
	if !strings.Contains(errOut, "10 errors, 0 warnings") {
		t.Errorf("stderr %q does not count 10 errors", errOut)
	}
}

func TestVetOutputs(t *testing.T) {
	dir := writeRepo(t, map[string]string{
		"apps/web.yaml": strings.Replace(pod, "%s", "web", 1) + "    imagePullPolicy: Sometimes\n",
		"apps/svc.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n",
	})
	t.Run("json", func(t *testing.T) {
		rep := vetFailedJSON(t, dir)
		want := vetReport{Valid: false, Diagnostics: []vetDiagnostic{
			{File: "./apps/svc.yaml", Line: 2, Column: 7, Object: "Service/default/web", Path: "kind", Severity: "warning",
				Message: "Service is not run by berth and is skipped: pods reach each other by pod address, or from outside by hostPort"},
			{File: "./apps/web.yaml", Line: 8, Column: 22, Object: "Pod/default/web", Path: "spec.containers.0.imagePullPolicy", Severity: "error",
				Message: "must be one of Always, IfNotPresent, Never"},
		}}
		if d := cmp.Diff(want, rep); d != "" {
			t.Errorf("(-want +got):\n%s", d)
		}
	})
	t.Run("github", func(t *testing.T) {
		code, out, _ := vet(t, "-o", "github", dir)
		if code != 1 {
			t.Fatalf("exit %d, want 1", code)
		}
		rel := filepath.ToSlash(filepath.Join(dir, "apps"))
		want := "::warning file=" + ghProperty(rel+"/svc.yaml") + ",line=2,col=7,title=Service/default/web::kind: Service is not run by berth and is skipped: pods reach each other by pod address, or from outside by hostPort\n" +
			"::error file=" + ghProperty(rel+"/web.yaml") + ",line=8,col=22,title=Pod/default/web::spec.containers.0.imagePullPolicy: must be one of Always, IfNotPresent, Never\n"
		if d := cmp.Diff(want, out); d != "" {
			t.Errorf("(-want +got):\n%s", d)
		}
	})
	t.Run("warnings pass unless strict", func(t *testing.T) {
		ok := writeRepo(t, map[string]string{
			"web.yaml": strings.Replace(pod, "%s", "web", 1),
			"svc.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n",
		})
		if code, out, errOut := vet(t, ok); code != 0 || !strings.Contains(out, "warning: Service/default/web") || !strings.Contains(errOut, "1 object, valid with 1 warning") {
			t.Errorf("without --strict: exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		if code, out, _ := vet(t, "--strict", ok); code != 1 || !strings.Contains(out, "./svc.yaml:2:7: Service/default/web: kind: Service is not run") {
			t.Errorf("with --strict: exit %d, stdout %q", code, out)
		}
	})
	t.Run("bounds of the repository", func(t *testing.T) {
		big := writeRepo(t, map[string]string{"big.yaml": strings.Repeat("#", 1<<20+1)})
		rep := vetFailedJSON(t, big)
		want := vetReport{Valid: false, Diagnostics: []vetDiagnostic{
			{File: "./big.yaml", Severity: "error", Message: "1048577 bytes exceeds the limit of 1 MiB: file too large"},
		}}
		if d := cmp.Diff(want, rep); d != "" {
			t.Errorf("(-want +got):\n%s", d)
		}
	})
	t.Run("bad output", func(t *testing.T) {
		if code, _, errOut := vet(t, "-o", "xml", dir); code != 1 || !strings.Contains(errOut, "want text, json or github") {
			t.Errorf("exit %d, stderr %q", code, errOut)
		}
	})
}

// TestVetNode checks that the node's name and labels, from --node-name,
// --node-label, BERTH_NODE_LABEL and --node-labels-file, reach CUE tags
// and @if.
func TestVetNode(t *testing.T) {
	dir := writeRepo(t, map[string]string{
		"fleet/gpu.cue": "@if(gpu)\n\npackage fleet\n\n// Broken on purpose: only nodes with a gpu label load this file.\nbad: {apiVersion: \"v1\", kind: \"Pod\", metadata: name: \"Bad\"}\n",
		"fleet/web.cue": "package fleet\n\n_zone: string @tag(zone)\n_node: string @tag(node)\nweb: {apiVersion: \"v1\", kind: \"ConfigMap\", metadata: name: \"web-\" + _zone + \"-\" + _node}\n",
		"labels.txt":    "# edge labels\nzone=eu-1\ngpu: \"true\"\n",
	})
	t.Setenv("BERTH_NODE_LABEL", "")
	os.Unsetenv("BERTH_NODE_LABEL")
	if code, out, errOut := vet(t, "--node-name", "n1", "--node-label", "zone=eu-1", dir); code != 0 {
		t.Errorf("no gpu label: exit %d: %s %s", code, out, errOut)
	}
	if code, out, _ := vet(t, "--node-name", "N_1", "--node-label", "zone=eu-1", dir); code != 1 || !strings.Contains(out, "ConfigMap/default/web-eu-1-N_1: metadata.name: must be a DNS-1123 subdomain") {
		t.Errorf("node name reaches the tag: exit %d: %s", code, out)
	}
	if code, out, _ := vet(t, "--node-name", "n1", "--node-labels-file", filepath.Join(dir, "labels.txt"), dir); code != 1 || !strings.Contains(out, "Pod/default/Bad") {
		t.Errorf("labels file: exit %d: %s", code, out)
	}
	t.Setenv("BERTH_NODE_LABEL", "zone=eu-1,gpu=true")
	if code, out, _ := vet(t, "--node-name", "n1", dir); code != 1 || !strings.Contains(out, "Pod/default/Bad") {
		t.Errorf("BERTH_NODE_LABEL: exit %d: %s", code, out)
	}
	if code, _, errOut := vet(t, "--node-labels-file", filepath.Join(dir, "missing.txt"), dir); code != 1 || !strings.Contains(errOut, "missing.txt") {
		t.Errorf("missing labels file: exit %d: %s", code, errOut)
	}
}

func TestParseLabelsFile(t *testing.T) {
	got, err := parseLabelsFile([]byte("# c\n\na=1\nb: two\nkubernetes.io/arch = arm64\n"))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(map[string]string{"a": "1", "b": "two", "kubernetes.io/arch": "arm64"}, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if _, err := parseLabelsFile([]byte("novalue\n")); err == nil {
		t.Error("a line without a value was accepted")
	}
}

// TestVetSandboxBinary runs the berth binary on a CUE package that eats
// memory: the sandbox stops it and vet reports it at the package.
func TestVetSandboxBinary(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "berth")
	if out, err := exec.Command("go", "build", "-o", exe, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := writeRepo(t, map[string]string{
		"bad/bad.cue": "package bad\n\nimport \"list\"\n\nx: [for i in list.Range(0, 100000000, 1) {i}]\ny: len(x)\n",
		"ok/pod.yaml": strings.Replace(pod, "%s", "ok", 1),
		"ok/good.cue": "package ok\n\ncm: {apiVersion: \"v1\", kind: \"ConfigMap\", metadata: name: \"cm\"}\n",
	})
	cmd := exec.Command(exe, "vet", dir)
	cmd.Env = append(os.Environ(), "BERTH_CUE_MEMORY=192", "BERTH_CUE_TIMEOUT=60s")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("vet: %v, want exit 1; stderr: %s", err, errOut.String())
	}
	want := "./bad/bad.cue: CUE evaluation of this package used more than 192 MiB of memory\n"
	if out.String() != want {
		t.Errorf("stdout %q, want %q", out.String(), want)
	}
}

// blockingFS blocks every Open until release is closed.
type blockingFS struct {
	fstest.MapFS
	opened  chan struct{}
	release chan struct{}
	once    sync.Once
}

func (b *blockingFS) Open(name string) (fs.File, error) {
	b.once.Do(func() { close(b.opened) })
	<-b.release
	return b.MapFS.Open(name)
}

// TestVetLoadStopsOnSignal checks that a load still running when the
// command's context ends (SIGTERM) gives way at once instead of being
// waited for.
func TestVetLoadStopsOnSignal(t *testing.T) {
	fsys := &blockingFS{MapFS: fstest.MapFS{"a.yaml": {Data: []byte("a: 1\n")}}, opened: make(chan struct{}), release: make(chan struct{})}
	defer close(fsys.release)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := loadContext(ctx, fsys, schema.Options{})
		done <- err
	}()
	<-fsys.opened // the load is under way
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

// vetFailedJSON runs vet -o json on dir, which must fail, and returns its
// report.
func vetFailedJSON(t *testing.T, dir string) vetReport {
	t.Helper()
	code, out, _ := vet(t, "-o", "json", dir)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	var rep vetReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	return rep
}

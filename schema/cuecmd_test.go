package schema

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/internal/corpus"
	"berth.dev/berth/reconcile"
)

// buildCue builds the cue command of the CUE module version berth's go.mod
// requires, in a module of its own under a temporary directory. Without
// the Go module proxy (or a module cache holding cmd/cue's dependencies)
// the test is skipped, unless BERTH_CONFORMANCE=required.
func buildCue(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "cuelang.org/go").Output()
	if err != nil {
		t.Fatalf("go list -m cuelang.org/go: %v", err)
	}
	version := strings.TrimSpace(string(out))
	dir := t.TempDir()
	bin := filepath.Join(dir, "cue")
	for _, args := range [][]string{
		{"mod", "init", "cuebuild"},
		{"get", "cuelang.org/go/cmd/cue@" + version},
		{"build", "-o", bin, "cuelang.org/go/cmd/cue"},
	} {
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			msg := "cannot build the cue command " + version + " (go " + strings.Join(args, " ") + "): " + err.Error() + "\n" + string(out)
			if os.Getenv(corpus.RequiredEnv) == "required" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	return bin
}

// TestCueCommandAgrees checks that `cue export -t … -T` on a module using
// @tag, @if, tag variables, @embed, its own packages and berth.dev/k8s
// (copied to cue.mod/gen for the cue command) gives the objects berth loads
// for a node with the same name and labels: -t node=NAME, -t LABEL=VALUE
// for @tag(LABEL), a bare -t LABEL for @if(LABEL), and -T for os and arch,
// as docs/schema.md says.
func TestCueCommandAgrees(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the cue command")
	}
	cue := buildCue(t)
	files := map[string]string{
		"cue.mod/module.cue": `module: "example.com/site@v0"
language: version: "v0.12.0"
`,
		"lib/app.cue": `package lib

import "berth.dev/k8s"

#App: {
	name:     string
	image:    string
	replicas: *1 | int
	labels: [string]: string
	out: k8s.#Deployment & {
		apiVersion: "apps/v1"
		kind:       "Deployment"
		metadata: {"name": name, "labels": labels}
		spec: {
			"replicas": replicas
			selector: matchLabels: app: name
			template: {
				metadata: "labels": app: name
				spec: containers: [{"name": name, "image": image}]
			}
		}
	}
}
`,
		"apps/web.cue": `package apps

import "example.com/site/lib"

_node:     string @tag(node)
_zone:     *"none" | string @tag(zone)
_arch:     *"unknown" | string @tag(arch,var=arch)
_replicas: *1 | int @tag(replicas,type=int)

web: (lib.#App & {
	name:     "web"
	image:    "nginx:1.27"
	replicas: _replicas
	labels: {node: _node, zone: _zone, arch: _arch}
}).out
`,
		"apps/gpu.cue": `@if(gpu)

package apps

inference: {
	apiVersion: "v1"
	kind:       "Pod"
	metadata: name: "inference"
	spec: containers: [{name: "infer", image: "registry.local/infer:2"}]
}
`,
		"apps/cpu.cue": `@if(!gpu && !edge)

package apps

batch: {
	apiVersion: "v1"
	kind:       "Pod"
	metadata: name: "batch"
	spec: containers: [{name: "batch", image: "busybox"}]
}
`,
		"apps/config.cue": `@extern(embed)

package apps

_os: string @tag(os,var=os)

settings: {
	apiVersion: "v1"
	kind:       "ConfigMap"
	metadata: name: "settings"
	data: {
		"app.conf": _ @embed(file=conf/app.conf, type=text)
		os:         _os
	}
}
`,
		"apps/conf/app.conf": "listen 8080\n",
	}
	// The cue command needs berth's schema where berth supplies it.
	for name, data := range SchemaFiles() {
		files[path.Join("cue.mod/gen/berth.dev", name)] = string(data)
	}
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
	for _, tc := range []struct {
		name   string
		labels map[string]string
		tags   []string
	}{
		{"gpu node", map[string]string{"zone": "eu-1", "replicas": "3", "gpu": "true"}, []string{"-t", "node=edge-7", "-t", "zone=eu-1", "-t", "replicas=3", "-t", "gpu"}},
		{"plain node", map[string]string{"zone": "us-2"}, []string{"-t", "node=edge-7", "-t", "zone=us-2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Load(os.DirFS(dir), Options{Node: reconcile.HostNode("edge-7", tc.labels)})
			if err != nil {
				t.Fatalf("berth: %v", err)
			}
			berth := map[string]any{}
			for _, o := range res.Objects {
				berth[o.Kind+"/"+o.Metadata.Name] = summary(o.Metadata.Labels, o.Pod, o.Deployment, o.ConfigMap)
			}
			cmd := exec.Command(cue, append([]string{"export", "--out", "json", "-T"}, append(tc.tags, "./apps")...)...)
			cmd.Dir = dir
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("cue export %v: %v\n%s", tc.tags, err, stderr.String())
			}
			var exported map[string]struct {
				Kind     string `json:"kind"`
				Metadata struct {
					Name   string            `json:"name"`
					Labels map[string]string `json:"labels"`
				} `json:"metadata"`
				Spec json.RawMessage   `json:"spec"`
				Data map[string]string `json:"data"`
			}
			if err := json.Unmarshal(out, &exported); err != nil {
				t.Fatal(err)
			}
			viaCue := map[string]any{}
			for _, o := range exported {
				var pod *reconcile.PodSpec
				var dep *reconcile.DeploymentSpec
				var cm *reconcile.ConfigMapData
				switch o.Kind {
				case "Pod":
					pod = new(reconcile.PodSpec)
					_ = json.Unmarshal(o.Spec, pod)
				case "Deployment":
					dep = new(reconcile.DeploymentSpec)
					_ = json.Unmarshal(o.Spec, dep)
				case "ConfigMap":
					cm = &reconcile.ConfigMapData{Data: o.Data}
				}
				viaCue[o.Kind+"/"+o.Metadata.Name] = summary(o.Metadata.Labels, pod, dep, cm)
			}
			if len(viaCue) < 3 {
				t.Errorf("cue export gave %d objects, want at least 3", len(viaCue))
			}
			if diff := cmp.Diff(viaCue, berth); diff != "" {
				t.Errorf("berth differs from cue export %v (-cue +berth):\n%s", tc.tags, diff)
			}
		})
	}
}

// summary is what the comparison looks at: labels, replicas, images and a
// ConfigMap's data.
func summary(labels map[string]string, pod *reconcile.PodSpec, dep *reconcile.DeploymentSpec, cm *reconcile.ConfigMapData) string {
	var b strings.Builder
	for _, k := range []string{"node", "zone", "arch"} {
		b.WriteString(k + "=" + labels[k] + " ")
	}
	if cm != nil {
		for _, k := range slices.Sorted(maps.Keys(cm.Data)) {
			b.WriteString(k + ":" + strconv.Quote(cm.Data[k]) + " ")
		}
		return b.String()
	}
	if dep != nil {
		if dep.Replicas != nil {
			b.WriteString("replicas=" + strconv.Itoa(int(*dep.Replicas)) + " ")
		}
		pod = &dep.Template.Spec
	}
	for _, c := range pod.Containers {
		b.WriteString(c.Name + ":" + c.Image + " ")
	}
	return b.String()
}

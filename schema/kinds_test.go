package schema

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/reconcile"
)

func TestStrictMakesSkippedKindsErrors(t *testing.T) {
	fsys := fstest.MapFS{"svc.yaml": {Data: []byte("apiVersion: v1\nkind: Service\nmetadata: {name: web}\n")}}
	res, err := Load(fsys, Options{})
	if err != nil {
		t.Fatalf("without Strict: %v", err)
	}
	if len(res.Warnings) != 1 || len(res.Objects) != 0 {
		t.Fatalf("without Strict: %d warnings, %d objects; want 1 warning, no object", len(res.Warnings), len(res.Objects))
	}
	_, err = Load(fsys, Options{Strict: true})
	got := diagnostics(t, err)
	want := []string{"./svc.yaml:2:7: Service/default/web: kind: Service is not run by berth and is skipped: pods reach each other by pod address, or from outside by hostPort"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("with Strict (-want +got):\n%s", d)
	}
}

// TestSecretValuesNeverInDiagnostics breaks a Secret in every way that
// concerns its values and checks that no message shows one.
func TestSecretValuesNeverInDiagnostics(t *testing.T) {
	const secret = "hunter2-TOPSECRET"
	fsys := fstest.MapFS{"s.yaml": {Data: []byte(`apiVersion: v1
kind: Secret
metadata: {name: s}
data:
  plain: ` + secret + `
  number: 42
stringData:
  ok: ` + secret + `
  list: [` + secret + `]
  "bad key!": ` + secret + `
`)}}
	_, err := Load(fsys, Options{})
	lines := diagnostics(t, err)
	if len(lines) < 3 {
		t.Fatalf("want at least 3 diagnostics, got %q", lines)
	}
	for _, l := range lines {
		if strings.Contains(l, "hunter2") || strings.Contains(l, "TOPSECRET") {
			t.Errorf("diagnostic shows a secret value: %s", l)
		}
	}
	// A value that is not base64, alone, is reported by key only.
	fsys = fstest.MapFS{"s.yaml": {Data: []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata:\n  plain: " + secret + "\n")}}
	_, err = Load(fsys, Options{})
	got := diagnostics(t, err)
	want := []string{"./s.yaml:5:10: Secret/default/s: data.plain: must be base64 (use stringData for plain text)"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

func TestSecretStringDataWins(t *testing.T) {
	fsys := fstest.MapFS{"s.yaml": {Data: []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {a: YQ==, b: Yg==}\nstringData: {b: B, c: C}\n")}}
	res, err := Load(fsys, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for k, v := range res.Objects[0].Secret.Data {
		got[k] = string(v)
	}
	if d := cmp.Diff(map[string]string{"a": "a", "b": "B", "c": "C"}, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if res.Objects[0].Secret.Type != "Opaque" {
		t.Errorf("type = %q, want Opaque", res.Objects[0].Secret.Type)
	}
}

// TestSecretValuesNeverInCUEErrors checks a conflict in a Secret written in
// CUE, which CUE reports with both values.
func TestSecretValuesNeverInCUEErrors(t *testing.T) {
	fsys := fstest.MapFS{"s/s.cue": {Data: []byte(`package s

import "berth.dev/k8s"

s: k8s.#Secret & {
	apiVersion: "v1"
	kind:       "Secret"
	metadata: name: "s"
	stringData: password: "hunter2"
}
s: stringData: password: "TOPSECRET"
`)}}
	_, err := Load(fsys, Options{})
	lines := diagnostics(t, err)
	if len(lines) == 0 {
		t.Fatal("no diagnostics")
	}
	for _, l := range lines {
		if strings.Contains(l, "hunter2") || strings.Contains(l, "TOPSECRET") {
			t.Errorf("diagnostic shows a secret value: %s", l)
		}
	}
	t.Log(lines)
}

// TestTagVariables checks the tag variables berth provides from the
// node's kubelet labels (os, arch, hostname), that a tag the node sets
// wins over a variable, that a variable berth does not provide (now) is an
// error, and that a label key that is not a CUE identifier cannot be a tag,
// as with the cue command.
func TestTagVariables(t *testing.T) {
	node := reconcile.KubeletNode("Edge-7", "linux", "arm64", map[string]string{"zone": "eu-1"})
	cm := func(body string) fstest.MapFS {
		return fstest.MapFS{"z/z.cue": {Data: []byte("package z\n\n" + body + "\ncm: {apiVersion: \"v1\", kind: \"ConfigMap\", metadata: name: \"cm\", data: {os: _os, arch: _arch, host: _host, zone: _zone}}\n")}}
	}
	res, err := Load(cm("_os: string @tag(os,var=os)\n_arch: string @tag(arch,var=arch)\n_host: string @tag(host,var=hostname)\n_zone: string @tag(zone,var=os)"), Options{Node: node})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"os": "linux", "arch": "arm64", "host": "edge-7", "zone": "eu-1"}
	if d := cmp.Diff(want, res.Objects[0].ConfigMap.Data); d != "" {
		t.Errorf("data (-want +got):\n%s", d)
	}
	// @if takes names, not comparisons, as the cue command has it.
	fsys := cm("_os: 1\n_arch: 1\n_host: 1\n_zone: 1")
	fsys["z/eu.cue"] = &fstest.MapFile{Data: []byte("@if(zone == \"eu-1\")\n\npackage z\n")}
	if _, err := Load(fsys, Options{Node: node}); err == nil || !strings.Contains(err.Error(), "./z/eu.cue:1:1: invalid operator == in build attribute") {
		t.Errorf("@if with ==: got %v", err)
	}
	for _, tt := range []struct{ body, want string }{
		{"_os: string @tag(os,var=now)\n_arch: 1\n_host: 1\n_zone: 1", "./z/z.cue:3:13: tag variable 'now' not found"},
		{"_os: string @tag(\"topology.kubernetes.io/zone\")\n_arch: 1\n_host: 1\n_zone: 1", `./z/z.cue:3:13: invalid identifier "topology.kubernetes.io/zone"`},
	} {
		_, err := Load(cm(tt.body), Options{Node: node})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want an error containing %q", tt.body, err, tt.want)
		}
	}
}

func TestStrictMakesIgnoredAnnotationsErrors(t *testing.T) {
	fsys := fstest.MapFS{"p.yaml": {Data: []byte("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations: {seccomp.security.alpha.kubernetes.io/pod: runtime/default}\nspec: {containers: [{name: c, image: busybox}]}\n")}}
	if res, err := Load(fsys, Options{}); err != nil || len(res.Warnings) != 1 || len(res.Objects) != 1 {
		t.Fatalf("without Strict: %v, %v", res, err)
	}
	got := diagnostics(t, func() error { _, err := Load(fsys, Options{Strict: true}); return err }())
	want := []string{`./p.yaml:5:59: Pod/default/p: metadata.annotations."seccomp.security.alpha.kubernetes.io/pod": annotation not honoured: seccomp annotations are not read by berth; use securityContext.seccompProfile`}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("with Strict (-want +got):\n%s", d)
	}
}

// TestParentPackageFiles checks that a CUE package includes the files of
// the same package in the directories above it, as cue/load does, and that
// an object those files declare, seen again by the subdirectory's package,
// is reported as such.
func TestParentPackageFiles(t *testing.T) {
	pod := func(name string) string {
		return name + `: {apiVersion: "v1", kind: "Pod", metadata: name: "` + name + `", spec: containers: [{name: "a", image: _img}]}` + "\n"
	}
	fsys := fstest.MapFS{
		"root.cue": {Data: []byte("package x\n\n_img: \"nginx\"\n")},
		"a/a.cue":  {Data: []byte("package x\n\n" + pod("api"))},
	}
	res, err := Load(fsys, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Objects) != 1 || res.Objects[0].Pod.Containers[0].Image != "nginx" {
		t.Errorf("objects %v, want Pod api with the image of ./root.cue", res.Objects)
	}
	fsys["root.cue"] = &fstest.MapFile{Data: []byte("package x\n\n_img: \"nginx\"\n" + pod("web"))}
	want := []string{"./root.cue:4:1: Pod/default/web: duplicate object: declared again by the CUE package of a subdirectory (a package includes the files of the same package in the directories above it)"}
	_, err = Load(fsys, Options{})
	if d := cmp.Diff(want, diagnostics(t, err)); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

// TestNoModuleDownload checks that a CUE module dependency is never
// fetched: its import is an error that says why, at the import.
func TestNoModuleDownload(t *testing.T) {
	fsys := fstest.MapFS{
		"cue.mod/module.cue": {Data: []byte("module: \"example.com/x@v0\"\nlanguage: version: \"v0.12.0\"\ndeps: \"example.org/lib@v0\": v: \"v0.1.0\"\n")},
		"a/a.cue":            {Data: []byte("package a\n\nimport \"example.org/lib\"\n\nx: lib.y\n")},
	}
	_, err := Load(fsys, Options{})
	want := []string{`./a/a.cue:3:8: import failed: cannot find package "example.org/lib": cannot fetch example.org/lib@v0.1.0: berth does not download CUE modules: keep the packages in the repository (cue.mod/pkg, cue.mod/usr or the module itself)`}
	if d := cmp.Diff(want, diagnostics(t, err)); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

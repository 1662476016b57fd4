package schema

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/format"
	"cuelang.org/go/cue/parser"
	"cuelang.org/go/cue/token"
	"cuelang.org/go/encoding/yaml"
	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/reconcile"
)

const validPod = `apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  initContainers:
  - name: init
    image: busybox:1.36
    command: [sh, -c, "echo hi"]
  containers:
  - name: app
    image: nginx:1.27
    imagePullPolicy: Never
    env:
    - {name: MODE, value: prod}
    ports:
    - {containerPort: 80, hostPort: 8080, protocol: UDP}
    volumeMounts:
    - {name: data, mountPath: /data, readOnly: true}
  - name: sidecar
    image: busybox:1.36
    args: [sleep, "60"]
    workingDir: /tmp
  volumes:
  - name: data
    hostPath: {path: /srv/data, type: Directory}
  restartPolicy: OnFailure
  terminationGracePeriodSeconds: 0
  hostname: web
`

// diagnostics returns the diagnostics of err, failing unless err is an
// *Error.
func diagnostics(t *testing.T, err error) []string {
	t.Helper()
	var lerr *Error
	if !errors.As(err, &lerr) {
		t.Fatalf("want *Error, got %T: %v", err, err)
	}
	var lines []string
	for _, d := range lerr.Diagnostics {
		lines = append(lines, d.String())
	}
	return lines
}

func TestDecodePod(t *testing.T) {
	res, err := Load(fstest.MapFS{"apps/web.yaml": {Data: []byte(validPod)}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	zero := int64(0)
	want := []reconcile.Object{{
		TypeMeta: reconcile.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		Metadata: reconcile.ObjectMeta{Name: "web", Namespace: "default", Labels: map[string]string{"app": "web"}},
		Source:   reconcile.Position{File: "./apps/web.yaml", Line: 1, Column: 1},
		Pod: &reconcile.PodSpec{
			InitContainers: []reconcile.Container{{
				Name: "init", Image: "busybox:1.36", Command: []string{"sh", "-c", "echo hi"},
			}},
			Containers: []reconcile.Container{{
				Name:            "app",
				Image:           "nginx:1.27",
				ImagePullPolicy: reconcile.PullNever,
				Env:             []reconcile.EnvVar{{Name: "MODE", Value: "prod"}},
				Ports:           []reconcile.ContainerPort{{ContainerPort: 80, HostPort: 8080, Protocol: "UDP"}},
				VolumeMounts:    []reconcile.VolumeMount{{Name: "data", MountPath: "/data", ReadOnly: true}},
			}, {
				Name: "sidecar", Image: "busybox:1.36", Args: []string{"sleep", "60"}, WorkingDir: "/tmp",
			}},
			Volumes: []reconcile.Volume{{
				Name:     "data",
				HostPath: &reconcile.HostPathVolumeSource{Path: "/srv/data", Type: "Directory"},
			}},
			RestartPolicy:                 reconcile.RestartOnFailure,
			TerminationGracePeriodSeconds: &zero,
			Hostname:                      "web",
		},
	}}
	if diff := cmp.Diff(want, res.Objects); diff != "" {
		t.Errorf("objects (-want +got):\n%s", diff)
	}
	if len(res.Warnings) != 0 {
		t.Errorf("warnings: %v", res.Warnings)
	}
}

// TestFormatsAgree checks that YAML, JSON and CUE declaring the same Pod
// decode to the same object.
func TestFormatsAgree(t *testing.T) {
	files := map[string]string{
		"pod.yaml": validPod,
		"pod.json": `{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "web"}},
			"spec": {"initContainers": [{"name": "init", "image": "busybox:1.36", "command": ["sh", "-c", "echo hi"]}],
			"containers": [{"name": "app", "image": "nginx:1.27", "imagePullPolicy": "Never",
				"env": [{"name": "MODE", "value": "prod"}],
				"ports": [{"containerPort": 80, "hostPort": 8080, "protocol": "UDP"}],
				"volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": true}]},
				{"name": "sidecar", "image": "busybox:1.36", "args": ["sleep", "60"], "workingDir": "/tmp"}],
			"volumes": [{"name": "data", "hostPath": {"path": "/srv/data", "type": "Directory"}}],
			"restartPolicy": "OnFailure", "terminationGracePeriodSeconds": 0, "hostname": "web"}}`,
		"pod.cue": `package p
_image: "busybox:1.36"
web: {
	apiVersion: "v1", kind: "Pod"
	metadata: {name: "web", labels: app: "web"}
	spec: {
		initContainers: [{name: "init", image: _image, command: ["sh", "-c", "echo hi"]}]
		containers: [{
			name: "app", image: "nginx:1.27", imagePullPolicy: "Never"
			env: [{name: "MODE", value: "prod"}]
			ports: [{containerPort: 80, hostPort: 8080, protocol: "UDP"}]
			volumeMounts: [{name: "data", mountPath: "/data", readOnly: true}]
		}, {name: "sidecar", image: _image, args: ["sleep", "60"], workingDir: "/tmp"}]
		volumes: [{name: "data", hostPath: {path: "/srv/data", type: "Directory"}}]
		restartPolicy: "OnFailure"
		terminationGracePeriodSeconds: 0
		hostname: "web"
	}
}`,
	}
	var first *reconcile.Object
	for name, src := range files {
		res, err := Load(fstest.MapFS{name: {Data: []byte(src)}}, Options{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(res.Objects) != 1 {
			t.Fatalf("%s: got %d objects", name, len(res.Objects))
		}
		obj := res.Objects[0]
		obj.Source = reconcile.Position{}
		if first == nil {
			first = &obj
			continue
		}
		if diff := cmp.Diff(*first, obj); diff != "" {
			t.Errorf("%s differs (-first +got):\n%s", name, diff)
		}
	}
}

func TestLoadProblems(t *testing.T) {
	pod := func(name string) *fstest.MapFile {
		return &fstest.MapFile{Data: []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: " + name +
			"}\nspec: {containers: [{name: app, image: busybox}]}\n")}
	}
	tests := []struct {
		name string
		fsys fstest.MapFS
		opts Options
		want []string
	}{{
		name: "file too large",
		fsys: fstest.MapFS{"big.yaml": {Data: []byte(strings.Repeat("# padding\n", 20))}, "ok.yaml": pod("ok")},
		opts: Options{MaxFileSize: 100},
		want: []string{"./big.yaml: file is larger than the limit of 100 bytes"},
	}, {
		name: "file over one MiB",
		fsys: fstest.MapFS{"big.yaml": {Data: make([]byte, DefaultMaxFileSize+1)}},
		want: []string{"./big.yaml: file is larger than the limit of 1 MiB"},
	}, {
		name: "too many documents",
		fsys: fstest.MapFS{"many.yaml": {Data: []byte(strings.Repeat("---\n", 4) + "a: 1\n")}},
		opts: Options{MaxDocuments: 3},
		want: []string{"./many.yaml:5:1: file has more than 3 documents"},
	}, {
		name: "alias bomb",
		fsys: fstest.MapFS{"bomb.yaml": {Data: []byte(aliasBomb)}},
		want: []string{"./bomb.yaml:1:1: invalid YAML: aliases expand to more than 50000 nodes"},
	}, {
		name: "YAML nested too deep",
		fsys: fstest.MapFS{"deep.yaml": {Data: []byte("a: " + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + "\n")}},
		want: []string{"./deep.yaml: invalid YAML: exceeded max depth of 10000"},
	}, {
		name: "JSON nested too deep",
		fsys: fstest.MapFS{"deep.json": {Data: []byte(`{"a": ` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + "}\n")}},
		want: []string{"./deep.json:1:10006: invalid JSON: invalid character '[' exceeded max depth"},
	}, {
		name: "replicas over the bound",
		fsys: fstest.MapFS{"d.yaml": {Data: []byte(workload("Deployment", "replicas: 1000000"))}},
		want: []string{"./d.yaml:4:18: Deployment/default/w: spec.replicas: 1000000 pods is more than the limit of 1000 per workload (--max-replicas raises it)"},
	}, {
		name: "replicas over a lowered bound, and a Job's parallelism",
		fsys: fstest.MapFS{
			"s.yaml": {Data: []byte(workload("StatefulSet", "replicas: 11"))},
			"j.yaml": {Data: []byte("apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  parallelism: 11\n  template: {spec: {restartPolicy: Never, containers: [{name: c, image: busybox}]}}\n")},
		},
		opts: Options{MaxReplicas: 10},
		want: []string{
			"./j.yaml:5:16: Job/default/j: spec.parallelism: 11 pods is more than the limit of 10 per workload (--max-replicas raises it)",
			"./s.yaml:4:18: StatefulSet/default/w: spec.replicas: 11 pods is more than the limit of 10 per workload (--max-replicas raises it)",
		},
	}, {
		name: "pods of the revision over the bound",
		fsys: fstest.MapFS{
			"a.yaml": {Data: []byte(workload("Deployment", "replicas: 3"))},
			"b.yaml": pod("b"),
			"c.yaml": {Data: []byte(strings.Replace(workload("StatefulSet", "replicas: 2"), "name: w", "name: s", 1))},
			"d.yaml": pod("d"),
		},
		opts: Options{MaxPods: 5},
		want: []string{"./c.yaml:1:1: StatefulSet/default/s: with this StatefulSet the revision runs 6 pods on this host, more than the limit of 5 (--max-pods raises it)"},
	}, {
		name: "keys that name no file, an env value with NUL",
		fsys: fstest.MapFS{
			"cm.yaml": {Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata:\n  \".\": x\n  \"..\": y\n  ..a: z\n  .ok: w\n  a..b: v\n")},
			"p.yaml":  {Data: []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: busybox, env: [{name: A, value: \"a\\0b\"}, {name: B, value: ok}]}]}\n")},
		},
		want: []string{
			`./cm.yaml:5:3: ConfigMap/default/x: data.".": invalid key: must not be '.' or start with '..' (it names a file of a volume)`,
			`./cm.yaml:6:3: ConfigMap/default/x: data."..": invalid key: must not be '.' or start with '..' (it names a file of a volume)`,
			`./cm.yaml:7:3: ConfigMap/default/x: data."..a": invalid key: must not be '.' or start with '..' (it names a file of a volume)`,
			"./p.yaml:4:70: Pod/default/p: spec.containers.0.env.0.value: must not contain a NUL byte",
		},
	}, {
		name: "symlink out of the repository",
		fsys: fstest.MapFS{
			"apps/up.yaml":  {Data: []byte("../../etc/pod.yaml"), Mode: os.ModeSymlink},
			"apps/abs.yaml": {Data: []byte("/etc/pod.yaml"), Mode: os.ModeSymlink},
		},
		want: []string{
			"./apps/abs.yaml: symbolic link points outside the repository",
			"./apps/up.yaml: symbolic link points outside the repository",
		},
	}, {
		name: "symlink chain out of the repository",
		fsys: fstest.MapFS{
			"a.yaml":     {Data: []byte("sub/b.yaml"), Mode: os.ModeSymlink},
			"sub/b.yaml": {Data: []byte("../../x.yaml"), Mode: os.ModeSymlink},
		},
		want: []string{
			"./a.yaml: symbolic link points outside the repository",
			"./sub/b.yaml: symbolic link points outside the repository",
		},
	}, {
		name: "symlink through a linked directory",
		fsys: fstest.MapFS{
			"etc":      {Data: []byte("/etc"), Mode: os.ModeSymlink},
			"pod.yaml": {Data: []byte("etc/pod.yaml"), Mode: os.ModeSymlink},
		},
		want: []string{"./pod.yaml: symbolic link not followed: ./etc is not a plain directory"},
	}, {
		name: "broken and looping symlinks",
		fsys: fstest.MapFS{
			"gone.yaml": {Data: []byte("nowhere.yaml"), Mode: os.ModeSymlink},
			"loop.yaml": {Data: []byte("loop.yaml"), Mode: os.ModeSymlink},
		},
		want: []string{
			"./gone.yaml: broken symbolic link to ./nowhere.yaml",
			"./loop.yaml: too many levels of symbolic links",
		},
	}, {
		name: "symlink inside the repository is followed",
		fsys: fstest.MapFS{
			"shared/web.txt": pod("My_Pod"),
			"apps/web.yaml":  {Data: []byte("../shared/web.txt"), Mode: os.ModeSymlink},
			"apps/dir.yaml":  {Data: []byte("../shared"), Mode: os.ModeSymlink},
		},
		want: []string{
			"./apps/web.yaml:3:18: Pod/default/My_Pod: metadata.name: must be a DNS-1123 subdomain: " +
				"lower-case alphanumerics, '-' or '.', starting and ending with an alphanumeric",
		},
	}, {
		name: "only a required field missing",
		fsys: fstest.MapFS{"p.yaml": {Data: []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n" +
			"spec:\n  containers:\n  - name: app\n")}},
		want: []string{"./p.yaml:6:5: Pod/default/p: spec.containers.0.image: required field is missing"},
	}, {
		name: "only an unknown field",
		fsys: fstest.MapFS{"p.yaml": {Data: []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n" +
			"spec:\n  containers:\n  - name: app\n    image: x\n    imagePullPolicy: Always\n    imagePulPolicy: Never\n")}},
		want: []string{`./p.yaml:9:5: Pod/default/p: spec.containers.0.imagePulPolicy: field not supported by berth (did you mean "imagePullPolicy"?)`},
	}, {
		name: "cue evaluation errors",
		fsys: fstest.MapFS{"x.cue": {Data: []byte("package x\na: 1\na: 2\nb: a + \"s\"\n")}},
		want: []string{
			"./x.cue:3:4: a: conflicting values 2 and 1",
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.fsys, tt.opts)
			if diff := cmp.Diff(tt.want, diagnostics(t, err)); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s", diff)
			}
		})
	}
}

const aliasBomb = `a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
`

// TestSymlinkOnDisk checks, on a real directory, that a link to a file
// outside the repository is never read.
func TestSymlinkOnDisk(t *testing.T) {
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret.yaml")
	if err := os.WriteFile(secret, []byte("apiVersion: v1\nkind: Secret-Content\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	repo := t.TempDir()
	if err := os.Symlink(secret, filepath.Join(repo, "abs.yaml")); err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(repo, secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(rel, filepath.Join(repo, "rel.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(repo, "dir")); err != nil {
		t.Fatal(err)
	}
	_, err = Load(os.DirFS(repo), Options{})
	want := []string{
		"./abs.yaml: symbolic link points outside the repository",
		"./rel.yaml: symbolic link points outside the repository",
	}
	got := diagnostics(t, err)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("diagnostics (-want +got):\n%s", diff)
	}
	if strings.Contains(strings.Join(got, "\n"), "Secret-Content") {
		t.Error("a file outside the repository was read")
	}
}

func TestLoadEmptyAndMissing(t *testing.T) {
	res, err := Load(fstest.MapFS{"README.md": {Data: []byte("hi")}}, Options{})
	if err != nil || len(res.Objects) != 0 {
		t.Fatalf("empty repository: %v, %v", res, err)
	}
	_, err = Load(os.DirFS(filepath.Join(t.TempDir(), "missing")), Options{})
	var lerr *Error
	if err == nil || errors.As(err, &lerr) {
		t.Fatalf("missing repository: want a plain error, got %v", err)
	}
	if _, err := Load(fstest.MapFS{}, Options{MaxFileSize: -1}); err == nil {
		t.Fatal("negative limit: want an error")
	}
}

// TestDeterministic checks that objects and diagnostics come out in the same
// order whatever the order of evaluation.
func TestDeterministic(t *testing.T) {
	fsys := podRepo(50)
	fsys["z/bad.yaml"] = &fstest.MapFile{Data: []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: Z}\n")}
	fsys["a/bad.yaml"] = &fstest.MapFile{Data: []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: A}\n")}
	_, err := Load(fsys, Options{})
	first := diagnostics(t, err)
	for range 3 {
		_, err := Load(fsys, Options{})
		if diff := cmp.Diff(first, diagnostics(t, err)); diff != "" {
			t.Fatalf("diagnostics changed between runs:\n%s", diff)
		}
	}
	delete(fsys, "z/bad.yaml")
	delete(fsys, "a/bad.yaml")
	res, err := Load(fsys, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.IsSortedFunc(res.Objects, func(a, b reconcile.Object) int { return comparePos(a.Source, b.Source) }) {
		t.Error("objects are not sorted by position")
	}
}

func TestDiagnosticString(t *testing.T) {
	pos := reconcile.Position{File: "./apps/web.yaml", Line: 12, Column: 5}
	tests := []struct {
		d    Diagnostic
		want string
	}{
		{Diagnostic{Pos: pos, Object: "Pod/default/web", Path: "spec.containers.0.image", Message: "required field is missing"},
			"./apps/web.yaml:12:5: Pod/default/web: spec.containers.0.image: required field is missing"},
		{Diagnostic{Pos: pos, Message: "invalid YAML: bad"}, "./apps/web.yaml:12:5: invalid YAML: bad"},
		{Diagnostic{Pos: reconcile.Position{File: "./a.yaml"}, Message: "too large"}, "./a.yaml: too large"},
		{Diagnostic{Pos: pos, Object: "Service/default/web", Message: "ignored", Severity: SeverityWarning},
			"./apps/web.yaml:12:5: warning: Service/default/web: ignored"},
	}
	for _, tt := range tests {
		if got := tt.d.String(); got != tt.want {
			t.Errorf("got  %s\nwant %s", got, tt.want)
		}
	}
	err := &Error{Diagnostics: []Diagnostic{tests[0].d, tests[1].d}}
	if got, want := err.Error(), tests[0].want+"\n"+tests[1].want; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// TestPatternRules checks that every regular expression in the schema has a
// rule describing it, so no message shows a raw pattern.
func TestPatternRules(t *testing.T) {
	seen := 0
	for name, src := range SchemaFiles() {
		f, err := parser.ParseFile(name, src)
		if err != nil {
			t.Fatal(err)
		}
		ast.Walk(f, func(n ast.Node) bool {
			u, ok := n.(*ast.UnaryExpr)
			if !ok || (u.Op != token.MAT && u.Op != token.NMAT) {
				return true
			}
			lit, ok := u.X.(*ast.BasicLit)
			if !ok {
				t.Errorf("%s: pattern is not a literal", u.Pos())
				return true
			}
			re, err := strconv.Unquote(lit.Value)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := regexp.Compile(re); err != nil {
				t.Errorf("%s: %v", u.Pos(), err)
			}
			if _, ok := patternRules[u.Op.String()+re]; !ok {
				t.Errorf("%s: no rule for %s%q", u.Pos(), u.Op, re)
			}
			seen++
			return true
		}, nil)
	}
	if seen < 10 {
		t.Errorf("found only %d patterns in the schema", seen)
	}
}

func TestEditDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{{"contianers", "containers", 1}, {"image", "imag", 1}, {"", "abc", 3}, {"ports", "ports", 0}, {"env", "args", 4}} {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

// TestSchemaFormatted checks that the embedded schema is formatted as
// cue fmt would.
func TestSchemaFormatted(t *testing.T) {
	for name, src := range SchemaFiles() {
		got, err := format.Source(src)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if string(got) != string(src) {
			if os.Getenv("BERTH_UPDATE") != "" {
				if err := os.WriteFile(name, got, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			t.Errorf("%s is not formatted; BERTH_UPDATE=1 go test ./schema formats it", name)
		}
	}
}

// workload is a Deployment or StatefulSet named w with spec field extra.
func workload(kind, extra string) string {
	return "apiVersion: apps/v1\nkind: " + kind + "\nmetadata: {name: w}\nspec: {" + extra +
		",\n  selector: {matchLabels: {app: w}}, template: {metadata: {labels: {app: w}}, spec: {containers: [{name: c, image: busybox}]}}}\n"
}

// TestLargeDataMaps checks that a ConfigMap or Secret with a data map too
// large for CUE's evaluator (more than inlineKeys keys) is read whole and
// checked by the same rules, each problem at its key: one valid 1 MiB
// ConfigMap of 88,000 keys took a minute before.
func TestLargeDataMaps(t *testing.T) {
	var cm, sec strings.Builder
	cm.WriteString("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata:\n")
	sec.WriteString("apiVersion: v1\nkind: Secret\nmetadata: {name: big}\nstringData: {k1: plain}\ndata:\n")
	const n = 20000
	for i := range n {
		fmt.Fprintf(&cm, "  k%d: v%d\n", i, i)
		fmt.Fprintf(&sec, "  k%d: dg==\n", i) // "v"
	}
	res, err := Load(fstest.MapFS{"cm.yaml": {Data: []byte(cm.String())}, "s.yaml": {Data: []byte(sec.String())}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range res.Objects {
		switch o.Kind {
		case "ConfigMap":
			if len(o.ConfigMap.Data) != n || o.ConfigMap.Data["k19999"] != "v19999" {
				t.Errorf("ConfigMap: %d keys, k19999=%q", len(o.ConfigMap.Data), o.ConfigMap.Data["k19999"])
			}
		case "Secret":
			if len(o.Secret.Data) != n || string(o.Secret.Data["k2"]) != "v" || string(o.Secret.Data["k1"]) != "plain" {
				t.Errorf("Secret: %d keys, k1=%q (stringData wins), k2=%q", len(o.Secret.Data), o.Secret.Data["k1"], o.Secret.Data["k2"])
			}
		}
	}
	bad := strings.Replace(strings.Replace(cm.String(), "  k7: v7\n", "  \"k 7\": v7\n", 1), "  k8: v8\n", "  \"..\": v8\n", 1)
	badSec := strings.Replace(sec.String(), "  k9: dg==\n", "  k9: \"not base64!\"\n", 1)
	_, err = Load(fstest.MapFS{"cm.yaml": {Data: []byte(bad)}, "s.yaml": {Data: []byte(badSec)}}, Options{})
	want := []string{
		`./cm.yaml:12:3: ConfigMap/default/big: data."k 7": invalid key: must be a configuration key: alphanumerics, '-', '_' or '.'`,
		`./cm.yaml:13:3: ConfigMap/default/big: data."..": invalid key: must not be '.' or start with '..' (it names a file of a volume)`,
		"./s.yaml:15:3: Secret/default/big: data.k9: must be base64 (use stringData for plain text)",
	}
	if d := cmp.Diff(want, diagnostics(t, err)); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

// TestDataSizeBound checks that a ConfigMap a CUE package makes (no file
// size bounds it) is refused beyond Kubernetes' 1 MiB, at the object, and
// that a large map of a YAML document is taken out of CUE's evaluation.
func TestDataSizeBound(t *testing.T) {
	fsys := fstest.MapFS{"c/c.cue": {Data: []byte("package c\n\nimport (\n\t\"list\"\n\t\"strings\"\n)\n\n" +
		"cm: {apiVersion: \"v1\", kind: \"ConfigMap\", metadata: name: \"c\", data: {for i in list.Range(1000, 2100, 1) {\"k\\(i)\": strings.Repeat(\"a\", 1000)}}}\n")}}
	_, err := Load(fsys, Options{})
	want := []string{"./c/c.cue:8:1: ConfigMap/default/c: data of 1105500 bytes is more than the limit of 1 MiB (Kubernetes' own)"}
	if d := cmp.Diff(want, diagnostics(t, err)); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}

	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: m}\ndata:\n")
	for i := range inlineKeys + 1 {
		fmt.Fprintf(&b, "  k%d: v\n", i)
	}
	for _, tt := range []struct {
		doc  string
		took int
	}{
		{b.String(), inlineKeys + 1},
		{b.String() + "  n: 1\n", 0},                            // a value CUE must explain
		{strings.Replace(b.String(), "  k0: v\n", "", 1), 0},    // small enough for CUE
		{strings.Replace(b.String(), "ConfigMap", "Pod", 1), 0}, // not a ConfigMap
	} {
		expr, err := yaml.NewDecoder("m.yaml", strings.NewReader(tt.doc)).Extract()
		if err != nil {
			t.Fatal(err)
		}
		took := 0
		for _, m := range takeBigMaps(expr) {
			took += len(m.keys)
		}
		if took != tt.took {
			t.Errorf("took %d keys, want %d", took, tt.took)
		}
	}
}

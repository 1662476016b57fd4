package preview_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/tools/txtar"

	"berth.dev/berth/preview"
	"berth.dev/berth/reconcile"
	"berth.dev/berth/schema"
)

// Golden tests: each testdata/preview/*.txtar holds a base and a head
// revision (files under base/ and head/) and the expected outputs (text,
// json, markdown, exit). BERTH_UPDATE=1 rewrites the outputs.

const (
	baseCommit = "1111111111111111111111111111111111111111"
	headCommit = "2222222222222222222222222222222222222222"
)

var node = reconcile.Node{Name: "host-1", Labels: map[string]string{"site": "lab"}}

// revisions splits an archive into its base and head file trees and its
// outputs.
func revisions(a *txtar.Archive) (base, head fstest.MapFS, outputs map[string]string) {
	base, head, outputs = fstest.MapFS{}, fstest.MapFS{}, map[string]string{}
	for _, f := range a.Files {
		switch {
		case strings.HasPrefix(f.Name, "base/"):
			base[strings.TrimPrefix(f.Name, "base/")] = &fstest.MapFile{Data: f.Data}
		case strings.HasPrefix(f.Name, "head/"):
			head[strings.TrimPrefix(f.Name, "head/")] = &fstest.MapFile{Data: f.Data}
		default:
			outputs[f.Name] = string(f.Data)
		}
	}
	return base, head, outputs
}

// render returns every output of p.
func render(t *testing.T, p *preview.Plan) map[string]string {
	t.Helper()
	var text, js, md bytes.Buffer
	if err := preview.WriteText(&text, p, preview.TextOptions{Unchanged: true}); err != nil {
		t.Fatal(err)
	}
	if err := preview.WriteJSON(&js, p); err != nil {
		t.Fatal(err)
	}
	if err := preview.WriteMarkdown(&md, p, preview.MarkdownOptions{}); err != nil {
		t.Fatal(err)
	}
	return map[string]string{"text": text.String(), "json": js.String(), "markdown": md.String(), "exit": fmt.Sprintf("%d\n", p.ExitCode())}
}

var outputOrder = []string{"exit", "text", "json", "markdown"}

// checkGolden compares got with the outputs stored in the archive at path,
// or rewrites them.
func checkGolden(t *testing.T, path string, a *txtar.Archive, want, got map[string]string) {
	t.Helper()
	if os.Getenv("BERTH_UPDATE") != "" {
		var files []txtar.File
		for _, f := range a.Files {
			if strings.HasPrefix(f.Name, "base/") || strings.HasPrefix(f.Name, "head/") || strings.HasPrefix(f.Name, "inventory") {
				files = append(files, f)
			}
		}
		for _, name := range outputOrder {
			if s, ok := got[name]; ok {
				files = append(files, txtar.File{Name: name, Data: []byte(s)})
			}
		}
		a.Files = files
		if err := os.WriteFile(path, txtar.Format(a), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	for _, name := range outputOrder {
		if _, ok := got[name]; !ok {
			continue
		}
		w, ok := want[name]
		if !ok {
			t.Errorf("%s: no %q section (run with BERTH_UPDATE=1)", path, name)
			continue
		}
		if diff := cmp.Diff(w, got[name]); diff != "" {
			t.Errorf("%s: %s mismatch (-want +got):\n%s", path, name, diff)
		}
	}
}

// secretValues returns every Secret value the revisions declare.
func secretValues(ls ...*preview.Loaded) []string {
	var out []string
	for _, l := range ls {
		for _, o := range l.Objects {
			if o.Secret == nil {
				continue
			}
			for _, v := range o.Secret.Data {
				out = append(out, string(v))
			}
		}
	}
	return out
}

// noSecrets fails when any secret value appears in any output.
func noSecrets(t *testing.T, secrets []string, outputs map[string]string) {
	t.Helper()
	for _, v := range secrets {
		for name, out := range outputs {
			if strings.Contains(out, v) {
				t.Errorf("%s output shows secret value %q", name, v)
			}
		}
	}
}

func TestGolden(t *testing.T) {
	paths, err := filepath.Glob("../testdata/preview/*.txtar")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, path := range paths {
		name := strings.TrimSuffix(filepath.Base(path), ".txtar")
		if strings.HasPrefix(name, "fleet") {
			continue // fleet/ tests these
		}
		t.Run(name, func(t *testing.T) {
			a, err := txtar.ParseFile(path)
			if err != nil {
				t.Fatal(err)
			}
			baseFS, headFS, want := revisions(a)
			base := preview.Load(baseFS, baseCommit, schema.Options{})
			head := preview.Load(headFS, headCommit, schema.Options{})
			p := preview.Compare(base.Expand(node, preview.ExpandOptions{}), head.Expand(node, preview.ExpandOptions{}), "main", "feature")
			got := render(t, p)
			checkGolden(t, path, a, want, got)
			noSecrets(t, secretValues(base, head), got)
			checkMarkdown(t, got["markdown"], p)
		})
	}
}

func TestExitCodes(t *testing.T) {
	web := func(image string) fstest.MapFS {
		return fstest.MapFS{"web.yaml": &fstest.MapFile{Data: []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: web, image: " + image + "}]\n")}}
	}
	eval := func(fs fstest.MapFS, commit string) *preview.Evaluation {
		return preview.Evaluate(fs, commit, node, schema.Options{}, preview.ExpandOptions{})
	}
	tests := []struct {
		name       string
		base, head fstest.MapFS
		want       int
	}{
		{"unchanged", web("a:1"), web("a:1"), 0},
		{"changed", web("a:1"), web("a:2"), 2},
		{"created", fstest.MapFS{}, web("a:1"), 2},
		{"invalid head", web("a:1"), web("\"\""), 1},
		{"invalid base", web("\"\""), web("a:1"), 2},
		{"both invalid", web("\"\""), web("\"\""), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := preview.Compare(eval(tt.base, baseCommit), eval(tt.head, headCommit), "base", "head")
			if got := p.ExitCode(); got != tt.want {
				t.Errorf("exit code %d, want %d; plan %+v", got, tt.want, p)
			}
		})
	}
}

func TestColor(t *testing.T) {
	base := preview.Evaluate(fstest.MapFS{}, baseCommit, node, schema.Options{}, preview.ExpandOptions{})
	head := preview.Evaluate(fstest.MapFS{"a.yaml": &fstest.MapFile{Data: []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers: [{name: a, image: a:1}]\n")}}, headCommit, node, schema.Options{}, preview.ExpandOptions{})
	p := preview.Compare(base, head, "", "")
	for _, color := range []bool{false, true} {
		var b bytes.Buffer
		if err := preview.WriteText(&b, p, preview.TextOptions{Color: color}); err != nil {
			t.Fatal(err)
		}
		if has := strings.Contains(b.String(), "\x1b["); has != color {
			t.Errorf("color %v: escape codes present %v:\n%q", color, has, b.String())
		}
		if !strings.Contains(b.String(), "pod default/a") {
			t.Errorf("no pod line:\n%s", b.String())
		}
	}
}

// A head that fixes a base broken on this node is compared with nothing,
// with a warning naming the base's problem.
func TestInvalidBase(t *testing.T) {
	eval := func(image, commit string) *preview.Evaluation {
		fs := fstest.MapFS{"web.yaml": &fstest.MapFile{Data: []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: web, image: " + image + "}]\n")}}
		return preview.Evaluate(fs, commit, node, schema.Options{}, preview.ExpandOptions{})
	}
	p := preview.Compare(eval(`""`, baseCommit), eval("a:1", headCommit), "main", "fix")
	if p.Failed() || p.Counts.Create != 1 || !strings.Contains(p.BaseError, "./web.yaml:5:") {
		t.Fatalf("plan %+v", p)
	}
	out := render(t, p)
	for format, want := range map[string]string{"text": "warning: base revision main", "markdown": ":warning: Warning:", "json": `"baseError": "base revision main`} {
		if !strings.Contains(out[format], want) {
			t.Errorf("%s lacks %q:\n%s", format, want, out[format])
		}
	}
}

// Pods the node's policy refuses are marked, and fail the plan: apply
// would fail to create them.
func TestPolicyRefusal(t *testing.T) {
	files := fstest.MapFS{"net.yaml": &fstest.MapFile{Data: []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: net}\nspec:\n  hostNetwork: true\n  containers: [{name: a, image: a:1}]\n")}}
	base := preview.Evaluate(fstest.MapFS{}, baseCommit, node, schema.Options{}, preview.ExpandOptions{})
	for _, allow := range []bool{false, true} {
		pol := &reconcile.NodePolicy{HostNamespaces: allow}
		head := preview.Evaluate(files, headCommit, node, schema.Options{}, preview.ExpandOptions{Policy: pol})
		p := preview.Compare(base, head, "main", "feature")
		if refused := p.Changes[0].Refused != ""; refused == allow || p.Failed() == allow {
			t.Errorf("allow %v: refused %q, failed %v", allow, p.Changes[0].Refused, p.Failed())
		}
		out := render(t, p)
		if has := strings.Contains(out["text"], "refused by this node's policy: spec.hostNetwork"); has == allow {
			t.Errorf("allow %v: text:\n%s", allow, out["text"])
		}
		if !allow {
			checkMarkdown(t, out["markdown"], p)
		}
	}
}

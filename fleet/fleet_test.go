package fleet_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/renderer/html"
	xhtml "golang.org/x/net/html"
	"golang.org/x/tools/txtar"

	"berth.dev/berth/fleet"
	"berth.dev/berth/preview"
	"berth.dev/berth/schema"
)

const (
	baseCommit = "1111111111111111111111111111111111111111"
	headCommit = "2222222222222222222222222222222222222222"
)

type fixture struct {
	path    string
	archive *txtar.Archive
	inv     *fleet.Inventory
	base    fleet.Revision
	head    fleet.Revision
	want    map[string]string
	secrets []string
}

func loadFixture(t *testing.T, path string) *fixture {
	t.Helper()
	a, err := txtar.ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{path: path, archive: a, want: map[string]string{}}
	baseFS, headFS := fstest.MapFS{}, fstest.MapFS{}
	for _, file := range a.Files {
		switch {
		case strings.HasPrefix(file.Name, "base/"):
			baseFS[strings.TrimPrefix(file.Name, "base/")] = &fstest.MapFile{Data: file.Data}
		case strings.HasPrefix(file.Name, "head/"):
			headFS[strings.TrimPrefix(file.Name, "head/")] = &fstest.MapFile{Data: file.Data}
		case file.Name == "inventory.yaml":
			f.inv, err = fleet.ParseInventory(bytes.NewReader(file.Data))
			if err != nil {
				t.Fatal(err)
			}
		default:
			f.want[file.Name] = string(file.Data)
		}
	}
	f.base = fleet.Revision{Name: "main", Commit: baseCommit, Files: baseFS}
	f.head = fleet.Revision{Name: "feature", Commit: headCommit, Files: headFS}
	for _, fs := range []fstest.MapFS{baseFS, headFS} {
		l := preview.Load(fs, "x", schema.Options{})
		for _, o := range l.Objects {
			if o.Secret != nil {
				for _, v := range o.Secret.Data {
					f.secrets = append(f.secrets, string(v))
				}
			}
		}
	}
	return f
}

func render(t *testing.T, r *fleet.Report) map[string]string {
	t.Helper()
	var text, js, md bytes.Buffer
	if err := fleet.WriteText(&text, r, preview.TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := fleet.WriteJSON(&js, r); err != nil {
		t.Fatal(err)
	}
	if err := fleet.WriteMarkdown(&md, r, preview.MarkdownOptions{}); err != nil {
		t.Fatal(err)
	}
	return map[string]string{"exit": fmt.Sprintf("%d\n", r.ExitCode()), "text": text.String(), "json": js.String(), "markdown": md.String()}
}

var outputOrder = []string{"exit", "text", "json", "markdown"}

func (f *fixture) check(t *testing.T, got map[string]string) {
	t.Helper()
	if os.Getenv("BERTH_UPDATE") != "" {
		var files []txtar.File
		for _, file := range f.archive.Files {
			if _, isOutput := f.want[file.Name]; !isOutput {
				files = append(files, file)
			}
		}
		for _, name := range outputOrder {
			files = append(files, txtar.File{Name: name, Data: []byte(got[name])})
		}
		f.archive.Files = files
		if err := os.WriteFile(f.path, txtar.Format(f.archive), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	for _, name := range outputOrder {
		if diff := cmp.Diff(f.want[name], got[name]); diff != "" {
			t.Errorf("%s: %s mismatch (-want +got):\n%s", f.path, name, diff)
		}
	}
	for _, v := range f.secrets {
		for name, out := range got {
			if strings.Contains(out, v) {
				t.Errorf("%s output shows secret value %q", name, v)
			}
		}
	}
}

func groupsOf(r *fleet.Report) [][]string {
	var out [][]string
	for _, g := range r.Groups {
		out = append(out, g.Devices)
	}
	return out
}

func TestFleetGolden(t *testing.T) {
	tests := []struct {
		file        string
		groups      [][]string
		exit        int
		evaluations int
	}{
		{"fleet", [][]string{
			{"berlin-1", "berlin-2", "berlin-3"},
			{"paris-1", "paris-2", "paris-3"},
			{"lab-1", "lab-2"},
		}, 2, 2},
		{"fleet-invalid", [][]string{{"a-1", "b-1", "a-2"}}, 1, 2},
		// Base reads site and gpu: three distinct pairs (lab-1 shares
		// berlin-3's); head also reads workers: four sets.
		{"fleet-cue", [][]string{{"lab-1"}, {"paris-1", "paris-2"}, {"berlin-1", "berlin-2"}, {"berlin-3"}}, 1, 7},
		{"fleet-waves", [][]string{{"shop-01", "shop-02", "shop-03", "shop-04", "shop-05", "shop-06", "shop-07", "shop-08", "shop-09", "shop-10"}}, 2, 2},
		{"fleet-waves-invalid", [][]string{{"shop-01"}}, 1, 2},
		{"fleet-waves-cue", [][]string{{"shop-01", "shop-02", "shop-03", "shop-04", "shop-05", "shop-06", "shop-07", "shop-08", "shop-09", "shop-10"}}, 2, 2},
		{"fleet-waves-halted", [][]string{{"shop-01", "shop-02", "shop-03", "shop-04", "shop-05", "shop-06", "shop-07", "shop-08", "shop-09", "shop-10"}}, 2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f := loadFixture(t, filepath.Join("..", "testdata", "preview", tt.file+".txtar"))
			r, err := fleet.Plan(context.Background(), f.base, f.head, f.inv, fleet.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.groups, groupsOf(r)); diff != "" {
				t.Errorf("groups (-want +got):\n%s", diff)
			}
			if r.ExitCode() != tt.exit {
				t.Errorf("exit code %d, want %d", r.ExitCode(), tt.exit)
			}
			// One load per revision and distinct input, however many
			// devices.
			if r.Evaluations != tt.evaluations {
				t.Errorf("%d evaluations for %d devices, want %d", r.Evaluations, r.Devices, tt.evaluations)
			}
			got := render(t, r)
			f.check(t, got)
			checkMarkdown(t, got["markdown"], r)
		})
	}
}

// TestFleetMatchesSingleDevice checks that each group's plan is what a
// single-host preview of one of its devices says.
func TestFleetMatchesSingleDevice(t *testing.T) {
	f := loadFixture(t, filepath.Join("..", "testdata", "preview", "fleet.txtar"))
	r, err := fleet.Plan(context.Background(), f.base, f.head, f.inv, fleet.Options{Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range r.Groups {
		for _, name := range g.Devices {
			i := slices.IndexFunc(f.inv.Devices, func(d fleet.Device) bool { return d.Name == name })
			node := f.inv.Devices[i].Node()
			b := preview.Evaluate(f.base.Files, baseCommit, node, schema.Options{}, preview.ExpandOptions{})
			h := preview.Evaluate(f.head.Files, headCommit, node, schema.Options{}, preview.ExpandOptions{})
			p := preview.Compare(b, h, "main", "feature")
			if p.Counts.Create != g.Counts.Create || p.Counts.Replace != g.Counts.Replace || p.Counts.Delete != g.Counts.Delete {
				t.Errorf("device %s: %s, its group says %s", name, p.Counts, g.Counts)
			}
		}
	}
}

func renderHTML(t *testing.T, md string) *xhtml.Node {
	t.Helper()
	gm := goldmark.New(goldmark.WithExtensions(extension.GFM), goldmark.WithRendererOptions(html.WithUnsafe()))
	var out bytes.Buffer
	if err := gm.Convert([]byte(md), &out); err != nil {
		t.Fatal(err)
	}
	doc, err := xhtml.Parse(&out)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func findAll(n *xhtml.Node, tag string) []*xhtml.Node {
	var out []*xhtml.Node
	if n.Type == xhtml.ElementNode && n.Data == tag {
		out = append(out, n)
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		out = append(out, findAll(c, tag)...)
	}
	return out
}

func textOf(n *xhtml.Node) string {
	if n.Type == xhtml.TextNode {
		return n.Data
	}
	var b strings.Builder
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		b.WriteString(textOf(c))
	}
	return b.String()
}

// checkMarkdown renders the report's Markdown as GitHub would and checks
// its structure: one table row per group plus a total row, one
// collapsible section per group that runs (opening with a summary naming
// it), and every failing group's problems in a code block.
func checkMarkdown(t *testing.T, md string, r *fleet.Report) {
	t.Helper()
	doc := renderHTML(t, md)
	tables := findAll(doc, "table")
	if len(tables) != 1 {
		t.Fatalf("%d tables, want 1:\n%s", len(tables), md)
	}
	rows := findAll(findAll(tables[0], "tbody")[0], "tr")
	if len(rows) != len(r.Groups)+1 {
		t.Errorf("%d table rows, want %d groups and a total", len(rows), len(r.Groups))
	}
	for i, g := range r.Groups {
		cells := findAll(rows[i], "td")
		if textOf(cells[1]) != fmt.Sprint(len(g.Devices)) {
			t.Errorf("row %d: devices %q, want %d", i, textOf(cells[1]), len(g.Devices))
		}
	}
	var summaries []string
	for _, d := range findAll(doc, "details") {
		if s := findAll(d, "summary"); len(s) > 0 && strings.HasPrefix(textOf(s[0]), "Group ") {
			summaries = append(summaries, textOf(s[0]))
		}
	}
	var codes string
	for _, pre := range findAll(doc, "pre") {
		codes += textOf(pre)
	}
	n := 0
	for i, g := range r.Groups {
		if g.Failed {
			for _, d := range g.Plan.Diagnostics {
				if !strings.Contains(codes, d.String()) {
					t.Errorf("problem %q not shown", d)
				}
			}
			continue
		}
		if n >= len(summaries) || !strings.HasPrefix(summaries[n], fmt.Sprintf("Group %d: %d device", i+1, len(g.Devices))) {
			t.Errorf("no section for group %d in %q", i+1, summaries)
		}
		n++
	}
}

func TestParseInventory(t *testing.T) {
	tests := []struct {
		name, in, err string
	}{
		{"ok", "devices:\n- {name: a, labels: {x: y}}\n- name: b\n", ""},
		{"empty", "", "empty"},
		{"no devices", "devices: []\n", "no devices"},
		{"unknown field", "devices:\n- {name: a, lables: {x: y}}\n", "lables"},
		{"duplicate", "devices:\n- {name: a}\n- {name: a}\n", "also devices[0]"},
		{"bad name", "devices:\n- {name: A_1}\n", "DNS-1123"},
		{"missing name", "devices:\n- {labels: {x: y}}\n", "name is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv, err := fleet.ParseInventory(strings.NewReader(tt.in))
			if tt.err == "" {
				if err != nil || len(inv.Devices) != 2 || inv.Devices[0].Labels["x"] != "y" {
					t.Fatalf("got %+v, %v", inv, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error %v, want one containing %q", err, tt.err)
			}
		})
	}
}

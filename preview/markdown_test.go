package preview_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/renderer/html"
	xhtml "golang.org/x/net/html"

	"berth.dev/berth/preview"
	"berth.dev/berth/reconcile"
	"berth.dev/berth/schema"
)

// renderHTML renders Markdown as GitHub does (GFM tables, raw HTML
// allowed) and parses the result.
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
	var walk func(*xhtml.Node)
	walk = func(n *xhtml.Node) {
		if n.Type == xhtml.ElementNode && n.Data == tag {
			out = append(out, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return out
}

func textOf(n *xhtml.Node) string {
	var b strings.Builder
	var walk func(*xhtml.Node)
	walk = func(n *xhtml.Node) {
		if n.Type == xhtml.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return b.String()
}

func firstElement(n *xhtml.Node) *xhtml.Node {
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if c.Type == xhtml.ElementNode {
			return c
		}
	}
	return nil
}

// checkMarkdown renders md to HTML and checks its structure against p:
// a summary table with one row per action holding p's counts, a
// <details> per changed pod (plus one for the unchanged ones) each opening
// with a <summary>, and the head's problems in a code block.
func checkMarkdown(t *testing.T, md string, p *preview.Plan) {
	t.Helper()
	doc := renderHTML(t, md)
	headFailed := p.Error != ""
	for _, d := range p.Diagnostics {
		headFailed = headFailed || d.Severity == schema.SeverityError
	}
	if headFailed {
		pres := findAll(doc, "pre")
		if len(pres) == 0 {
			t.Fatalf("failed plan: no code block:\n%s", md)
		}
		for _, d := range p.Diagnostics {
			if !strings.Contains(textOf(pres[0]), d.String()) {
				t.Errorf("problems block lacks %q", d)
			}
		}
		if len(findAll(doc, "table")) != 0 {
			t.Errorf("failed plan has a table")
		}
		return
	}
	tables := findAll(doc, "table")
	if len(tables) != 1 {
		t.Fatalf("%d tables, want 1:\n%s", len(tables), md)
	}
	rows := map[string]string{}
	for _, tr := range findAll(tables[0], "tr") {
		cells := findAll(tr, "td")
		if len(cells) == 2 {
			rows[textOf(cells[0])] = textOf(cells[1])
		}
	}
	want := map[string]int{"create": p.Counts.Create, "replace": p.Counts.Replace, "delete": p.Counts.Delete, "unchanged": p.Counts.Unchanged}
	for k, n := range want {
		if rows[k] != itoa(n) {
			t.Errorf("table row %q = %q, want %d", k, rows[k], n)
		}
	}
	details := findAll(doc, "details")
	wantDetails := p.Counts.Changed()
	if p.Counts.Unchanged > 0 {
		wantDetails++
	}
	for _, w := range p.Workloads {
		if len(w.Diff) > 0 {
			wantDetails++
		}
	}
	if len(details) != wantDetails {
		t.Errorf("%d <details>, want %d:\n%s", len(details), wantDetails, md)
	}
	for _, d := range details {
		if f := firstElement(d); f == nil || f.Data != "summary" {
			t.Errorf("<details> does not open with <summary>: %s", textOf(d))
		}
	}
	for _, c := range p.Changes {
		if c.Action == reconcile.ActionKeep {
			continue
		}
		found := false
		for _, d := range details {
			s := firstElement(d)
			if s != nil && strings.Contains(textOf(s), string(c.Action)) && strings.Contains(textOf(s), c.Pod.String()) {
				found = true
			}
		}
		if !found {
			t.Errorf("no section for %s %s", c.Action, c.Pod)
		}
	}
}

func itoa(n int) string {
	var b bytes.Buffer
	b.WriteString(strings.TrimSpace(strings.Repeat(" ", 0)))
	return strings.TrimSpace(fmtInt(n))
}

func fmtInt(n int) string {
	if n == 0 {
		return "0"
	}
	s := ""
	for n > 0 {
		s = string(rune('0'+n%10)) + s
		n /= 10
	}
	return s
}

func TestMarkdownEscapes(t *testing.T) {
	p := &preview.Plan{
		Base: preview.RevisionInfo{Name: "main"}, Head: preview.RevisionInfo{Name: "x"},
		Changes: []preview.PodChange{{
			Action: reconcile.ActionReplace, Pod: reconcile.PodID{Namespace: "default", Name: "web"},
			Reason: "changed <b>x</b>",
			Diff:   []reconcile.FieldChange{{Path: "configMap[c].data.f", Op: reconcile.FieldChanged, From: "a\n```\n</details>\n", To: "b\n```\n</details>\n"}},
		}},
		Counts: preview.Counts{Replace: 1},
	}
	var b bytes.Buffer
	if err := preview.WriteMarkdown(&b, p, preview.MarkdownOptions{}); err != nil {
		t.Fatal(err)
	}
	doc := renderHTML(t, b.String())
	if n := len(findAll(doc, "details")); n != 1 {
		t.Errorf("%d <details>, want 1 (content escaped its block):\n%s", n, b.String())
	}
	if n := len(findAll(doc, "b")); n != 1 { // only the action's <b>
		t.Errorf("%d <b>, want 1: reason not escaped:\n%s", n, b.String())
	}
}

func TestMarkdownSizeLimit(t *testing.T) {
	p := &preview.Plan{Base: preview.RevisionInfo{Name: "a"}, Head: preview.RevisionInfo{Name: "b"}}
	for i := 0; i < 500; i++ {
		p.Changes = append(p.Changes, preview.PodChange{
			Action: reconcile.ActionReplace, Pod: reconcile.PodID{Namespace: "default", Name: "pod-" + fmtInt(i)}, Reason: "changed",
			Diff: []reconcile.FieldChange{{Path: "spec.containers[a].image", Op: reconcile.FieldChanged, From: strings.Repeat("x", 100), To: strings.Repeat("y", 100)}},
		})
		p.Counts.Replace++
	}
	var b bytes.Buffer
	if err := preview.WriteMarkdown(&b, p, preview.MarkdownOptions{MaxBytes: 20000}); err != nil {
		t.Fatal(err)
	}
	if b.Len() > 20000 {
		t.Errorf("markdown is %d bytes, limit 20000", b.Len())
	}
	if !strings.Contains(b.String(), "more sections are not shown") {
		t.Errorf("no note about the sections left out")
	}
}

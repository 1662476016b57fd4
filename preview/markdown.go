package preview

import (
	"bytes"
	"fmt"
	"html"
	"io"
	"strings"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/schema"
	"berth.dev/berth/source"
)

// MarkdownOptions tune WriteMarkdown.
type MarkdownOptions struct {
	// MaxBytes bounds the output (a pull-request comment has a size
	// limit); sections that do not fit are counted, not shown. Zero means
	// DefaultMaxMarkdown.
	MaxBytes int
}

// DefaultMaxMarkdown keeps a comment under GitHub's 65536 characters.
const DefaultMaxMarkdown = 60000

// WriteMarkdown prints p for a pull-request comment: a heading, the head's
// validation problems (file:line:col) if any, a summary table, the
// workloads, then one collapsible section per changed pod with its field
// diff, and the unchanged pods in one collapsed list.
func WriteMarkdown(w io.Writer, p *Plan, opts MarkdownOptions) error {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxMarkdown
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "### berth plan: %s → %s\n\n", MarkdownRevision(p.Base), MarkdownRevision(p.Head))
	if MarkdownProblems(&b, p.Head, p.Diagnostics, p.Error) {
		_, err := w.Write(b.Bytes())
		return err
	}
	MarkdownBaseError(&b, p.BaseError)
	if !p.HasChanges() {
		fmt.Fprintf(&b, "No changes: %s.\n\n", podCount(p.Counts.Unchanged)+" unchanged")
	}
	MarkdownCounts(&b, p.Counts)
	markdownWaiting(&b, p.Waiting)
	if len(p.Workloads) > 0 {
		b.WriteString("**Workloads**\n\n")
		MarkdownWorkloads(&b, p.Workloads)
	}
	if len(p.NotForNode) > 0 {
		b.WriteString("**Not for this node**\n\n")
		for _, m := range p.NotForNode {
			fmt.Fprintf(&b, "- %s\n", Escape(m.String()))
		}
		b.WriteString("\n")
	}
	var sections [][]byte
	var kept []PodChange
	for _, c := range p.Changes {
		if c.Action == reconcile.ActionKeep {
			kept = append(kept, c)
			continue
		}
		var s bytes.Buffer
		MarkdownChange(&s, c)
		sections = append(sections, s.Bytes())
	}
	if len(kept) > 0 {
		var s bytes.Buffer
		fmt.Fprintf(&s, "<details>\n<summary>%s unchanged</summary>\n\n", podCount(len(kept)))
		for _, c := range kept {
			fmt.Fprintf(&s, "- `%s`\n", c.Pod)
		}
		s.WriteString("\n</details>\n\n")
		sections = append(sections, s.Bytes())
	}
	writeSections(&b, sections, opts.MaxBytes)
	_, err := w.Write(b.Bytes())
	return err
}

// writeSections appends sections while they fit in max bytes, then says
// how many did not.
func writeSections(b *bytes.Buffer, sections [][]byte, max int) {
	for i, s := range sections {
		if b.Len()+len(s) > max-200 {
			fmt.Fprintf(b, "_%d more sections are not shown: the comment would be too long. Run `berth plan` for all of them._\n", len(sections)-i)
			return
		}
		b.Write(s)
	}
}

func problems(n int) string {
	if n == 1 {
		return "1 problem"
	}
	return fmt.Sprintf("%d problems", n)
}

func podCount(n int) string {
	if n == 1 {
		return "1 pod"
	}
	return fmt.Sprintf("%d pods", n)
}

// MarkdownRevision formats r as inline code with its short commit.
func MarkdownRevision(r RevisionInfo) string {
	c := source.ShortCommit(r.Commit)
	switch {
	case r.Name == "" && c == "":
		return "(none)"
	case r.Name == "" || r.Name == r.Commit || r.Name == c:
		return Code(c)
	case c == "":
		return Code(r.Name)
	}
	return Code(r.Name) + " (" + Code(c) + ")"
}

// MarkdownWorkloads lists the workloads' summaries, each with its
// template diff, if any, in a collapsible section.
func MarkdownWorkloads(b *bytes.Buffer, ws []WorkloadChange) {
	for _, wl := range ws {
		fmt.Fprintf(b, "- **%s**: %s\n", Escape(ownerName(wl.Owner)), Escape(wl.Summary))
		if len(wl.Diff) > 0 {
			var s []string
			for _, f := range wl.Diff {
				for _, l := range FieldLines(f) {
					s = append(s, string(l.Op)+" "+l.Text)
				}
			}
			b.WriteString("\n  <details>\n  <summary>template diff</summary>\n\n")
			var block bytes.Buffer
			CodeBlock(&block, "diff", strings.Join(s, "\n"))
			for _, line := range strings.SplitAfter(block.String(), "\n") {
				if line != "" && line != "\n" {
					b.WriteString("  ")
				}
				b.WriteString(line)
			}
			b.WriteString("  </details>\n\n")
		}
	}
	b.WriteString("\n")
}

// MarkdownBaseError writes the warning that the base could not be
// evaluated, if it could not.
func MarkdownBaseError(b *bytes.Buffer, msg string) {
	if msg == "" {
		return
	}
	b.WriteString("**:warning: Warning:**\n\n")
	CodeBlock(b, "text", msg)
}

// MarkdownCounts writes the summary table of counts.
func MarkdownCounts(b *bytes.Buffer, c Counts) {
	b.WriteString("| action | pods |\n|---|---:|\n")
	fmt.Fprintf(b, "| create | %d |\n| replace | %d |\n| delete | %d |\n| unchanged | %d |\n\n", c.Create, c.Replace, c.Delete, c.Unchanged)
}

// MarkdownProblems writes the head revision's validation problems and
// error, if any, as a code block (so they read as file:line:col lines),
// and reports whether the head failed.
func MarkdownProblems(b *bytes.Buffer, head RevisionInfo, diags []schema.Diagnostic, errText string) bool {
	errs := 0
	for _, d := range diags {
		if d.Severity == schema.SeverityError {
			errs++
		}
	}
	if errs > 0 {
		fmt.Fprintf(b, "**:x: The head revision %s fails validation** (%s); nothing would change.\n\n", MarkdownRevision(head), problems(errs))
	}
	if len(diags) > 0 {
		var lines []string
		for _, d := range diags {
			lines = append(lines, d.String())
		}
		CodeBlock(b, "text", strings.Join(lines, "\n"))
	}
	if errText != "" {
		b.WriteString("**:x: The plan failed:**\n\n")
		CodeBlock(b, "text", errText)
	}
	return errs > 0 || errText != ""
}

// MarkdownChange writes one pod change as a collapsible section: the
// action, pod and reason as its summary; owner, source and the field diff
// inside.
func MarkdownChange(b *bytes.Buffer, c PodChange) {
	fmt.Fprintf(b, "<details>\n<summary><b>%s</b> <code>%s</code>: %s", c.Action, html.EscapeString(c.Pod.String()), html.EscapeString(c.Reason))
	if c.Drift {
		b.WriteString(" (drift)")
	}
	if c.Refused != "" {
		b.WriteString(" :x: refused by this node's policy")
	}
	b.WriteString("</summary>\n\n")
	if c.Step > 1 {
		fmt.Fprintf(b, "Step %d of the rollout, after: %s\n\n", c.Step, html.EscapeString(c.After))
	}
	var facts []string
	if c.Owner != "" {
		facts = append(facts, "owner "+Code(c.Owner))
	}
	if c.Source != "" {
		facts = append(facts, "declared at "+Code(c.Source))
	}
	if len(c.Images) > 0 {
		var imgs []string
		for _, i := range c.Images {
			imgs = append(imgs, Code(i))
		}
		facts = append(facts, "images "+strings.Join(imgs, ", "))
	}
	if len(facts) > 0 {
		b.WriteString(strings.Join(facts, " · ") + "\n\n")
	}
	if c.Refused != "" {
		b.WriteString("Refused by this node's policy:\n\n")
		CodeBlock(b, "text", c.Refused)
	}
	if lines := PodLines(c); len(lines) > 0 {
		var s []string
		for _, l := range lines {
			s = append(s, string(l.Op)+" "+l.Text)
		}
		CodeBlock(b, "diff", strings.Join(s, "\n"))
	}
	b.WriteString("</details>\n\n")
}

// Code formats s as inline code, with a fence longer than any run of
// backticks in s.
func Code(s string) string {
	f := strings.Repeat("`", longestRun(s, '`')+1)
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		return f + " " + s + " " + f
	}
	return f + s + f
}

// CodeBlock writes text as a fenced code block whose fence no line of
// text can close.
func CodeBlock(b *bytes.Buffer, lang, text string) {
	f := strings.Repeat("`", max(3, longestRun(text, '`')+1))
	fmt.Fprintf(b, "%s%s\n%s\n%s\n\n", f, lang, text, f)
}

func longestRun(s string, r byte) int {
	best, n := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == r {
			n++
			best = max(best, n)
		} else {
			n = 0
		}
	}
	return best
}

// Escape makes s safe as Markdown text outside code: HTML and the
// characters Markdown gives meaning are escaped.
func Escape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '\\', '`', '*', '_', '[', ']', '<', '>', '#', '|', '~', '&':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

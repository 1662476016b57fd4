package preview

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/schema"
)

// TextOptions tune WriteText.
type TextOptions struct {
	// Color marks actions and diff lines with ANSI colours (for a
	// terminal).
	Color bool
	// Unchanged lists the pods that stay as they are, too.
	Unchanged bool
}

// ANSI colours.
const (
	ansiReset  = "\x1b[0m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiBold   = "\x1b[1m"
	ansiDim    = "\x1b[2m"
)

// Painter colours text for a terminal, or leaves it alone.
type Painter bool

// Paint wraps s in the colour code when p is true.
func (p Painter) Paint(code, s string) string {
	if !p || s == "" {
		return s
	}
	return code + s + ansiReset
}

// Action colours an action name.
func (p Painter) Action(a reconcile.Action) string {
	name := fmt.Sprintf("%-7s", a)
	switch a {
	case reconcile.ActionCreate:
		return p.Paint(ansiGreen, name)
	case reconcile.ActionReplace:
		return p.Paint(ansiYellow, name)
	case reconcile.ActionDelete:
		return p.Paint(ansiRed, name)
	}
	return p.Paint(ansiDim, name)
}

// Line colours one diff line.
func (p Painter) Line(l DiffLine) string {
	s := string(l.Op) + " " + l.Text
	switch l.Op {
	case '-':
		return p.Paint(ansiRed, s)
	case '+':
		return p.Paint(ansiGreen, s)
	case '!':
		return p.Paint(ansiYellow, s)
	}
	return s
}

// WriteText prints p for a terminal: the head's problems first, then the
// workloads, one line per pod with its field diff indented below, and a
// summary line.
func WriteText(w io.Writer, p *Plan, opts TextOptions) error {
	ew := &errWriter{w: w}
	paint := Painter(opts.Color)
	ew.printf("%s %s → %s\n", paint.Paint(ansiBold, "plan"), p.Base, p.Head)
	if writeTextProblems(ew, p.Head, p.Diagnostics, p.Error) {
		return ew.err
	}
	if p.BaseError != "" {
		ew.printf("%s %s\n", paint.Paint(ansiYellow, "warning:"), p.BaseError)
	}
	for _, wl := range p.Workloads {
		WriteTextWorkload(ew, wl, paint, "")
	}
	for _, c := range p.Changes {
		if c.Action == reconcile.ActionKeep && !opts.Unchanged {
			continue
		}
		WriteTextChange(ew, c, paint, "")
	}
	WriteTextNotForNode(ew, p.NotForNode, paint)
	writeTextWaiting(ew, paint, p.Waiting)
	ew.printf("plan: %s\n", p.Counts)
	return ew.err
}

// writeTextProblems prints diagnostics and error; it reports whether
// there were any errors.
func writeTextProblems(ew *errWriter, head RevisionInfo, diags []schema.Diagnostic, errText string) bool {
	failed := false
	var errs int
	for _, d := range diags {
		if d.Severity == schema.SeverityError {
			errs++
		}
	}
	if errs > 0 {
		failed = true
		ew.printf("head revision %s is invalid (%s); nothing would change:\n", head, problems(errs))
	}
	for _, d := range diags {
		ew.printf("%s\n", d)
	}
	if errText != "" {
		failed = true
		ew.printf("error: %s\n", errText)
	}
	return failed
}

// WriteTextChange prints one pod change and its diff, each line after
// indent.
func WriteTextChange(w io.Writer, c PodChange, paint Painter, indent string) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s%s pod %s", indent, paint.Action(c.Action), c.Pod)
	if c.Owner != "" && c.Owner != "Pod/"+c.Pod.String() && c.Owner != "Pod//"+c.Pod.Name {
		fmt.Fprintf(&b, " (%s)", c.Owner)
	}
	fmt.Fprintf(&b, ": %s", c.Reason)
	if c.Drift {
		b.WriteString(" " + paint.Paint(ansiYellow, "[drift]"))
	}
	b.WriteString("\n")
	if c.Step > 1 {
		fmt.Fprintf(&b, "%s    step %d, after: %s\n", indent, c.Step, c.After)
	}
	if len(c.Images) > 0 {
		fmt.Fprintf(&b, "%s    images: %s\n", indent, strings.Join(c.Images, ", "))
	}
	if c.Refused != "" {
		fmt.Fprintf(&b, "%s    %s %s\n", indent, paint.Paint(ansiRed, "refused by this node's policy:"), c.Refused)
	}
	for _, l := range PodLines(c) {
		fmt.Fprintf(&b, "%s    %s\n", indent, paint.Line(l))
	}
	io.WriteString(w, b.String())
}

// WriteTextWorkload prints a workload's summary and template diff, each
// line after indent.
func WriteTextWorkload(w io.Writer, wl WorkloadChange, paint Painter, indent string) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s%s\n", indent, paint.Paint(ansiBold, wl.String()))
	for _, f := range wl.Diff {
		for _, l := range FieldLines(f) {
			fmt.Fprintf(&b, "%s    %s\n", indent, paint.Line(l))
		}
	}
	io.WriteString(w, b.String())
}

// WriteJSON prints p as indented JSON, with hasChanges and failed.
func WriteJSON(w io.Writer, p *Plan) error {
	out := struct {
		*Plan
		HasChanges bool `json:"hasChanges"`
		Failed     bool `json:"failed"`
	}{p, p.HasChanges(), p.Failed()}
	if out.Changes == nil {
		cp := *p
		cp.Changes = []PodChange{}
		out.Plan = &cp
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// errWriter keeps the first write error.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(b []byte) (int, error) {
	if e.err != nil {
		return len(b), nil
	}
	n, err := e.w.Write(b)
	e.err = err
	return n, nil
}

func (e *errWriter) printf(format string, args ...any) {
	fmt.Fprintf(e, format, args...)
}

// WriteTextNotForNode prints one "skip" line for each object whose pods do
// not run on this node, naming it and why.
func WriteTextNotForNode(w io.Writer, skipped []reconcile.NotForNode, paint Painter) {
	for _, m := range skipped {
		fmt.Fprintf(w, "%s %s\n", paint.Paint(ansiYellow, "skip"), m)
	}
}

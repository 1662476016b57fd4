package preview

import (
	"strings"

	"github.com/sergi/go-diff/diffmatchpatch"

	"berth.dev/berth/reconcile"
)

// DiffLine is one line of a rendered field diff.
type DiffLine struct {
	// Op is '-' (old), '+' (new), ' ' (context or heading) or '!' (a
	// Secret's data changed; nothing of it is shown).
	Op   byte
	Text string
}

// maxFieldLines bounds the lines shown for one multi-line value.
const maxFieldLines = 60

// contextLines is how many unchanged lines are shown around a change in a
// multi-line value.
const contextLines = 2

// FieldLines renders a field change as diff lines: "- path: old" and
// "+ path: new" for a value, a heading and a line diff for a multi-line
// value, "! path: (secret changed)" for a Secret.
func FieldLines(c reconcile.FieldChange) []DiffLine {
	if c.Secret {
		word := reconcile.SecretChanged
		switch c.Op {
		case reconcile.FieldAdded:
			word = "(secret added)"
		case reconcile.FieldRemoved:
			word = "(secret removed)"
		}
		return []DiffLine{{'!', c.Path + ": " + word}}
	}
	if !c.Multiline() {
		var out []DiffLine
		if c.Op != reconcile.FieldAdded {
			out = append(out, DiffLine{'-', c.Path + ": " + c.From})
		}
		if c.Op != reconcile.FieldRemoved {
			out = append(out, DiffLine{'+', c.Path + ": " + c.To})
		}
		return out
	}
	head := c.Path + ":"
	switch c.Op {
	case reconcile.FieldAdded:
		head += " (added)"
	case reconcile.FieldRemoved:
		head += " (removed)"
	}
	out := []DiffLine{{' ', head}}
	return append(out, textDiff(c.From, c.To)...)
}

// textDiff is a line diff of a and b with a little context, indented by
// two spaces after the op.
func textDiff(a, b string) []DiffLine {
	dmp := diffmatchpatch.New()
	ca, cb, lines := dmp.DiffLinesToChars(a, b)
	diffs := dmp.DiffCharsToLines(dmp.DiffMain(ca, cb, false), lines)
	type line struct {
		op   byte
		text string
	}
	var all []line
	for _, d := range diffs {
		op := byte(' ')
		switch d.Type {
		case diffmatchpatch.DiffDelete:
			op = '-'
		case diffmatchpatch.DiffInsert:
			op = '+'
		}
		for _, l := range strings.SplitAfter(d.Text, "\n") {
			if l == "" {
				continue
			}
			all = append(all, line{op, strings.TrimSuffix(l, "\n")})
		}
	}
	// Keep changed lines and contextLines around them.
	keep := make([]bool, len(all))
	for i, l := range all {
		if l.op == ' ' {
			continue
		}
		for j := max(0, i-contextLines); j <= min(len(all)-1, i+contextLines); j++ {
			keep[j] = true
		}
	}
	var out []DiffLine
	skipped := false
	for i, l := range all {
		if !keep[i] {
			skipped = true
			continue
		}
		if skipped && len(out) > 0 {
			out = append(out, DiffLine{' ', "  …"})
		}
		skipped = false
		if len(out) >= maxFieldLines {
			out = append(out, DiffLine{' ', "  … (more lines not shown)"})
			break
		}
		out = append(out, DiffLine{l.op, "  " + l.text})
	}
	return out
}

// PodLines renders every field change of c.
func PodLines(c PodChange) []DiffLine {
	var out []DiffLine
	for _, f := range c.Diff {
		out = append(out, FieldLines(f)...)
	}
	return out
}

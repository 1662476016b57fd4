package schema

import (
	"cmp"
	"slices"
	"strings"

	"berth.dev/berth/reconcile"
)

// Severity tells errors from warnings.
type Severity int

// Severities of a Diagnostic.
const (
	// SeverityError fails the revision.
	SeverityError Severity = iota
	// SeverityWarning is reported but does not fail the revision.
	SeverityWarning
)

// String returns "error" or "warning".
func (s Severity) String() string {
	if s == SeverityWarning {
		return "warning"
	}
	return "error"
}

// Diagnostic is one problem found in a revision.
type Diagnostic struct {
	// Pos is where the problem is, in the user's file, relative to the
	// repository root with a leading "./".
	Pos reconcile.Position `json:"pos"`
	// Object is the object concerned, "Kind/namespace/name", or empty when
	// the problem is not about one object (a syntax error, for instance).
	Object string `json:"object,omitempty"`
	// Path is the field path inside the object, such as
	// "spec.containers.0.image", or empty.
	Path string `json:"path,omitempty"`
	// Message says what is wrong, as a sentence without a trailing period.
	Message string `json:"message"`
	// Severity is SeverityError unless the problem is only a warning.
	Severity Severity `json:"severity"`
}

// String formats d on one line as
//
//	./apps/web.yaml:12:5: Pod/default/web: spec.containers.0.image: message
//
// Warnings carry "warning: " before the object.
func (d Diagnostic) String() string {
	var b strings.Builder
	if p := d.Pos.String(); p != "" {
		b.WriteString(p)
		b.WriteString(": ")
	}
	if d.Severity == SeverityWarning {
		b.WriteString("warning: ")
	}
	if d.Object != "" {
		b.WriteString(d.Object)
		b.WriteString(": ")
	}
	if d.Path != "" {
		b.WriteString(d.Path)
		b.WriteString(": ")
	}
	b.WriteString(d.Message)
	return b.String()
}

// Error is returned by Load when a revision has at least one error. It holds
// every diagnostic found, errors and warnings, in file order.
type Error struct {
	Diagnostics []Diagnostic
}

// Error prints the diagnostics one per line.
func (e *Error) Error() string {
	lines := make([]string, len(e.Diagnostics))
	for i, d := range e.Diagnostics {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

// comparePos orders positions by file, line and column.
func comparePos(a, b reconcile.Position) int {
	return cmp.Or(
		strings.Compare(a.File, b.File),
		cmp.Compare(a.Line, b.Line),
		cmp.Compare(a.Column, b.Column),
	)
}

// sortDiagnostics orders ds by position, then object, path and message,
// and drops exact duplicates.
func sortDiagnostics(ds []Diagnostic) []Diagnostic {
	slices.SortStableFunc(ds, func(a, b Diagnostic) int {
		return cmp.Or(
			comparePos(a.Pos, b.Pos),
			strings.Compare(a.Object, b.Object),
			strings.Compare(a.Path, b.Path),
			strings.Compare(a.Message, b.Message),
		)
	})
	return slices.Compact(ds)
}

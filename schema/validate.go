package schema

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/token"

	"berth.dev/berth/reconcile"
)

// validator checks one object against the definition for its kind.
//
// CUE stops reporting inside a struct or list once one of its fields fails,
// and may skip the closedness check of a struct that already has an error.
// So the validator does not rely on a single Validate call: it walks the
// user's value, the schema and their unification side by side, checks field
// names against the schema itself (Allows), and validates each scalar on its
// own. Messages are derived from the schema constraint at the failing path,
// so they read the same whatever CUE's wording.
type validator struct {
	ctx *cue.Context
	// object is the object's "Kind/namespace/name" for diagnostics.
	object string
	// root is the user's value of the object.
	root cue.Value
	// plain is the object's plain data when it comes from a CUE package
	// (cheaper to look up than root), else root.
	plain cue.Value
	// start is where the object starts, the fallback position.
	start reconcile.Position
	diags []Diagnostic
	// strict makes warnings errors; warnings counts the warnings in diags.
	strict   bool
	warnings int
	// maxReplicas bounds a workload's pods (Options.MaxReplicas).
	maxReplicas int32
	// facts are what the object refers to and claims, for the checks
	// across the revision.
	facts facts
}

// walk validates the user's value d at path against the schema s; u is the
// unification of both.
func (x *validator) walk(s, u, d cue.Value, path []cue.Selector) {
	dk := d.IncompleteKind()
	sk := s.IncompleteKind()
	if !s.Exists() || sk == cue.BottomKind {
		// No schema to compare with: rely on CUE's own errors.
		x.reportErr(u.Validate(cue.Concrete(true)), s, d, path)
		return
	}
	if dk&sk == 0 {
		x.report(valuePos(d), path, fmt.Sprintf("must be %s, got %s", kindPhrase(sk), kindName(dk)))
		return
	}
	before := len(x.diags)
	switch dk {
	case cue.StructKind:
		x.walkStruct(s, u, d, path)
	case cue.ListKind:
		x.walkList(s, u, d, path)
	default:
		x.checkScalar(s, u, d, path)
		return
	}
	if len(x.diags) == before {
		// Constraints on the struct or list as a whole, such as a minimum
		// number of items.
		if err := u.Err(); err != nil {
			x.reportErr(err, s, d, path)
		}
	}
}

func (x *validator) walkStruct(s, u, d cue.Value, path []cue.Selector) {
	it, err := d.Fields()
	if err != nil {
		x.reportErr(err, s, d, path)
		return
	}
	for it.Next() {
		sel := it.Selector()
		p := append(slices.Clip(path), sel)
		if !s.Allows(sel) {
			x.unknownField(s, d, sel, it.Value(), p)
			continue
		}
		x.walk(lookup(s, sel), u.LookupPath(cue.MakePath(sel)), it.Value(), p)
	}
	it, err = s.Fields(cue.Optional(true))
	if err != nil {
		return
	}
	for it.Next() {
		sel := it.Selector()
		if sel.ConstraintType() != cue.RequiredConstraint || sel.LabelType() != cue.StringLabel {
			continue
		}
		name := cue.Str(sel.Unquoted())
		if d.LookupPath(cue.MakePath(name)).Exists() {
			continue
		}
		x.report(d.Pos(), append(slices.Clip(path), name), "required field is missing")
	}
}

func (x *validator) walkList(s, u, d cue.Value, path []cue.Selector) {
	it, err := d.List()
	if err != nil {
		x.reportErr(err, s, d, path)
		return
	}
	for i := 0; it.Next(); i++ {
		sel := cue.Index(i)
		se := s.LookupPath(cue.MakePath(sel))
		if !se.Exists() {
			se = s.LookupPath(cue.MakePath(cue.AnyIndex))
		}
		x.walk(se, u.LookupPath(cue.MakePath(sel)), it.Value(), append(slices.Clip(path), sel))
	}
}

func (x *validator) checkScalar(s, u, d cue.Value, path []cue.Selector) {
	if dv, _ := d.Default(); !dv.IsConcrete() {
		x.report(valuePos(d), path, fmt.Sprintf("must be a concrete value, got %v", d))
		return
	}
	err := u.Validate(cue.Concrete(true))
	if err == nil {
		return
	}
	op, alts := s.Expr()
	if op == cue.SelectorOp {
		// A reference to a definition such as #Quantity.
		op, alts = cue.Dereference(s).Expr()
	}
	if op == cue.OrOp {
		x.report(valuePos(d), path, x.disjunctionMessage(alts, d))
		return
	}
	x.reportErr(err, s, d, path)
}

// disjunctionMessage explains why d matches none of alts.
func (x *validator) disjunctionMessage(alts []cue.Value, d cue.Value) string {
	var lits []string
	var others []cue.Value
	for _, a := range alts {
		if a.IsConcrete() && a.IncompleteKind()&(cue.StructKind|cue.ListKind) == 0 {
			lits = append(lits, literal(a))
		} else {
			others = append(others, a)
		}
	}
	if len(others) > 1 {
		// Alternatives of different kinds, as in a port number or name:
		// explain the one of the user's kind.
		var same []cue.Value
		for _, o := range others {
			if o.IncompleteKind()&d.IncompleteKind() != 0 {
				same = append(same, o)
			}
		}
		if len(same) == 1 && len(lits) == 0 {
			others = same
		}
	}
	if len(others) == 1 {
		// Typically a default and a rule, as in *"default" | #DNS1123Label:
		// the rule is what the user broke.
		if err := others[0].Unify(d).Validate(cue.Concrete(true)); err != nil {
			var msgs []string
			for _, e := range errors.Errors(err) {
				msgs = append(msgs, message(e, others[0]))
			}
			return strings.Join(slices.Compact(msgs), "; ")
		}
	}
	for _, o := range others {
		lits = append(lits, fmt.Sprint(o))
	}
	return "must be one of " + strings.Join(lits, ", ")
}

// unknownField reports the field sel of d, which the schema s rejects.
func (x *validator) unknownField(s, d cue.Value, sel cue.Selector, dv cue.Value, path []cue.Selector) {
	name := sel.String()
	if sel.LabelType() == cue.StringLabel {
		name = sel.Unquoted()
	}
	pos := dv.Pos() // the key
	// In a map such as labels, the key broke the key pattern.
	if pats := patterns(s); len(pats) > 0 {
		key := x.ctx.Encode(name)
		for _, pat := range pats {
			err := pat.Unify(key).Validate(cue.Concrete(true))
			for _, e := range errors.Errors(err) {
				x.report(pos, path, "invalid key: "+message(e, pat))
			}
			if err != nil {
				return
			}
		}
	}
	msg := "field not supported by berth"
	if why := unsupportedReason(path); why != "" {
		x.report(pos, path, msg+": "+why)
		return
	}
	if alt := suggest(s, name); alt != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", alt)
	}
	x.report(pos, path, msg)
}

// reportErr reports each CUE error in err. The path and position default to
// the ones given; a position in the user's file from the error is preferred.
func (x *validator) reportErr(err error, s, d cue.Value, path []cue.Selector) {
	for _, e := range errors.Errors(err) {
		format, _ := e.Msg()
		if strings.HasSuffix(format, "errors in empty disjunction:") {
			if len(errors.Errors(err)) > 1 {
				continue // the alternatives follow as errors of their own
			}
		}
		pos := valuePos(d)
		if p := userPos(e); p.IsValid() {
			pos = p
		}
		msg := message(e, s)
		if why := restrictedReason(path); why != "" {
			msg += ": " + why
		}
		x.report(pos, path, msg)
	}
}

// reportAt reports msg at the user's value at path, or at its closest
// ancestor that has a position.
func (x *validator) reportAt(path []cue.Selector, msg string) {
	x.report(x.posAt(path), path, msg)
}

// posAt is the position of the user's value at path, or of its closest
// ancestor that has one.
func (x *validator) posAt(path []cue.Selector) token.Pos {
	for i := len(path); i >= 0; i-- {
		if p := valuePos(x.root.LookupPath(cue.MakePath(path[:i]...))); p.IsValid() {
			return p
		}
	}
	return token.NoPos
}

// warnAt reports a warning at the user's value at path; with strict, an
// error.
func (x *validator) warnAt(path []cue.Selector, msg string) {
	n := len(x.diags)
	x.reportAt(path, msg)
	if !x.strict {
		x.diags[n].Severity = SeverityWarning
		x.warnings++
	}
}

func (x *validator) report(pos token.Pos, path []cue.Selector, msg string) {
	x.diags = append(x.diags, Diagnostic{
		Pos:     x.position(pos),
		Object:  x.object,
		Path:    pathString(path),
		Message: msg,
	})
}

// position converts p, falling back to the object's start for positions
// that are not in the user's files.
func (x *validator) position(p token.Pos) reconcile.Position {
	if !isUserPos(p) {
		return x.start
	}
	return toPosition(p)
}

func toPosition(p token.Pos) reconcile.Position {
	return reconcile.Position{File: p.Filename(), Line: p.Line(), Column: p.Column()}
}

func isUserPos(p token.Pos) bool {
	return p.IsValid() && p.Filename() != "" && !strings.HasPrefix(p.Filename(), schemaFilePrefix)
}

// userPos returns the first position of e in a user's file.
func userPos(e errors.Error) token.Pos {
	for _, p := range append([]token.Pos{e.Position()}, e.InputPositions()...) {
		if isUserPos(p) {
			return p
		}
	}
	return token.NoPos
}

// lookup returns the schema for field sel of s, whether the field is
// regular, optional or required.
func lookup(s cue.Value, sel cue.Selector) cue.Value {
	if sel.LabelType() == cue.StringLabel && sel.ConstraintType() == 0 {
		for _, c := range []cue.Selector{sel, sel.Optional(), sel.Required()} {
			if v := s.LookupPath(cue.MakePath(c)); v.Exists() {
				return v
			}
		}
	}
	return s.LookupPath(cue.MakePath(sel))
}

// patterns returns the key patterns of s, as in {[=~"^a"]: string}.
func patterns(s cue.Value) []cue.Value {
	it, err := s.Fields(cue.Patterns(true))
	if err != nil {
		return nil
	}
	var pats []cue.Value
	for it.Next() {
		if sel := it.Selector(); sel.ConstraintType()&cue.PatternConstraint != 0 {
			pats = append(pats, sel.Pattern())
		}
	}
	return pats
}

// valuePos returns the position of the value of v, where Pos would return
// the position of the field's key.
func valuePos(v cue.Value) token.Pos {
	if f, ok := v.Source().(*ast.Field); ok && f.Value != nil && f.Value.Pos().IsValid() {
		return f.Value.Pos()
	}
	return v.Pos()
}

// suggest returns the field of s closest to name, if it is close enough to
// be a likely misspelling.
func suggest(s cue.Value, name string) string {
	it, err := s.Fields(cue.Optional(true))
	if err != nil {
		return ""
	}
	best, bestDist := "", len(name)/3+1
	for it.Next() {
		sel := it.Selector()
		if sel.LabelType() != cue.StringLabel {
			continue
		}
		cand := sel.Unquoted()
		if d := editDistance(strings.ToLower(name), strings.ToLower(cand)); d <= bestDist && d <= 2 {
			if d < bestDist || best == "" {
				best, bestDist = cand, d
			}
		}
	}
	return best
}

// editDistance is the Damerau-Levenshtein distance (optimal string
// alignment) between a and b, counting a swap of neighbours as one edit.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 20
	}
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// pathString formats path as CUE does, with list indices as plain numbers:
// spec.containers.0.image.
func pathString(path []cue.Selector) string {
	parts := make([]string, len(path))
	for i, sel := range path {
		parts[i] = sel.String()
	}
	return strings.Join(parts, ".")
}

// literal formats a concrete scalar for a message.
func literal(v cue.Value) string {
	if s, err := v.String(); err == nil {
		if s == "" {
			return `""`
		}
		return s
	}
	return fmt.Sprint(v)
}

// kindName names a kind of the user's value.
func kindName(k cue.Kind) string {
	switch k {
	case cue.StructKind:
		return "object"
	case cue.ListKind:
		return "list"
	case cue.StringKind:
		return "string"
	case cue.IntKind:
		return "integer"
	case cue.FloatKind, cue.NumberKind:
		return "number"
	case cue.BoolKind:
		return "boolean"
	case cue.NullKind:
		return "null"
	case cue.BytesKind:
		return "bytes"
	}
	return k.String()
}

// kindPhrase names the kinds a schema accepts, with an article.
func kindPhrase(k cue.Kind) string {
	var names []string
	for _, c := range []cue.Kind{cue.StructKind, cue.ListKind, cue.StringKind, cue.NumberKind, cue.IntKind, cue.BoolKind, cue.NullKind, cue.BytesKind} {
		if k&c == c {
			names = append(names, kindName(c))
			k &^= c
		}
	}
	if len(names) == 0 {
		return "absent"
	}
	s := strings.Join(names, " or ")
	if strings.IndexByte("aeiou", s[0]) >= 0 {
		return "an " + s
	}
	return "a " + s
}

// message turns a CUE error into a sentence, using the schema s at the
// failing path where the error's own wording is not helpful.
func message(e errors.Error, s cue.Value) string {
	format, args := e.Msg()
	arg := func(i int) string {
		if i < len(args) {
			return fmt.Sprint(args[i])
		}
		return ""
	}
	switch {
	case strings.Contains(format, "out of bound"):
		return boundMessage(arg(len(args) - 1))
	case strings.Contains(format, "does not satisfy"):
		return validatorMessage(arg(1))
	case strings.HasPrefix(format, "incomplete value"):
		return "must be a concrete value, got " + arg(0)
	case strings.HasPrefix(format, "conflicting values") && strings.Contains(format, "mismatched types"):
		return fmt.Sprintf("must be %s, got %s", arg(1), arg(0))
	case strings.HasPrefix(format, "conflicting values"):
		if s.Exists() && s.IsConcrete() && s.IncompleteKind()&(cue.StructKind|cue.ListKind) == 0 {
			if s.Kind() != cue.StringKind {
				return "must be " + literal(s)
			}
			return fmt.Sprintf("must be %q", literal(s))
		}
		return fmt.Sprintf("must be %s, got %s", arg(0), arg(1))
	case format == "field not allowed":
		return "field not supported by berth"
	case strings.Contains(format, "required but not present"):
		return "required field is missing"
	case strings.HasPrefix(format, "incompatible list lengths"):
		if len(args) == 2 {
			return fmt.Sprintf("must have at least %s %s", arg(1), plural(arg(1), "item"))
		}
	}
	return fmt.Sprintf(format, args...)
}

func plural(n, word string) string {
	if n == "1" {
		return word
	}
	return word + "s"
}

// boundMessage explains a failed bound such as <=65535 or =~"^[a-z]+$".
func boundMessage(bound string) string {
	for _, op := range []string{"=~", "!~", "<=", ">=", "!=", "<", ">"} {
		rest, ok := strings.CutPrefix(bound, op)
		if !ok {
			continue
		}
		if op == "=~" || op == "!~" {
			re, err := strconv.Unquote(rest)
			if err != nil {
				re = rest
			}
			if m, ok := patternRules[op+re]; ok {
				return m
			}
			if op == "=~" {
				return fmt.Sprintf("must match the regular expression %q", re)
			}
			return fmt.Sprintf("must not match the regular expression %q", re)
		}
		switch op {
		case "<=":
			return "must be at most " + rest
		case ">=":
			return "must be at least " + rest
		case "<":
			return "must be less than " + rest
		case ">":
			return "must be greater than " + rest
		case "!=":
			if rest == `""` {
				return "must not be empty"
			}
			return "must not be " + rest
		}
	}
	return "must satisfy " + bound
}

// validatorMessage explains a failed validator such as strings.MaxRunes(63).
func validatorMessage(v string) string {
	name, arg, _ := strings.Cut(strings.TrimSuffix(v, ")"), "(")
	switch name {
	case "strings.MaxRunes":
		return "must be at most " + arg + " characters long"
	case "strings.MinRunes":
		return "must be at least " + arg + " characters long"
	case "list.MinItems":
		return "must have at least " + arg + " " + plural(arg, "item")
	case "list.MaxItems":
		return "must have at most " + arg + " " + plural(arg, "item")
	case "net.IP":
		return "must be an IP address"
	}
	return "must satisfy " + v
}

// patternRules names the rule behind each regular expression of the schema,
// keyed by operator and expression. TestPatternRules checks that every
// expression in the schema has an entry.
var patternRules = map[string]string{
	`=~^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`: "must be a DNS-1123 label: lower-case alphanumerics or '-', " +
		"starting and ending with an alphanumeric",
	`=~^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`: "must be a DNS-1123 subdomain: " +
		"lower-case alphanumerics, '-' or '.', starting and ending with an alphanumeric",
	`=~^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`: "" +
		"must be a qualified name: an optional DNS-1123 subdomain and '/', then at most 63 alphanumerics, " +
		"'-', '_' or '.', starting and ending with an alphanumeric",
	`=~^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$`: "must be a label value: empty, or at most 63 " +
		"alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric",
	`=~^[-._a-zA-Z][-._a-zA-Z0-9]*$`: "must be an environment variable name: letters, digits, '_', '-' or '.', " +
		"not starting with a digit",
	`=~^[a-z0-9](-?[a-z0-9])*$`: "must be an IANA service name: lower-case alphanumerics or '-', " +
		"starting and ending with an alphanumeric, without \"--\"",
	`=~^[-._a-zA-Z0-9]+$`: "must be a configuration key: alphanumerics, '-', '_' or '.'",
	`!~^(\.|\.\..*)$`:     "must not be '.' or start with '..' (it names a file of a volume)",
	`!~\x00`:              "must not contain a NUL byte",
	`=~^[0-9]+%$`:         "must be a number or a percentage such as 25%",
	`=~^metadata\.(labels|annotations)\['[^']+'\]$`: "must be a pod field such as metadata.name, " +
		"metadata.labels['key'], spec.nodeName or status.podIP",
	`=~[a-z]`:          "must contain at least one letter",
	`=~^/`:             "must be an absolute path",
	`!~:`:              "must not contain ':'",
	`!~^/`:             "must be a relative path",
	`!~(^|/)\.\.(/|$)`: "must not contain '..'",
	`=~^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$`: "must be a quantity " +
		"such as 64Mi, 1G or 500m",
}

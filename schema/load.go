package schema

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/token"
	"cuelang.org/go/encoding/json"
	"cuelang.org/go/encoding/yaml"

	"berth.dev/berth/reconcile"
)

// Default limits on untrusted input.
const (
	// DefaultMaxFileSize is the largest file Load reads: 1 MiB.
	DefaultMaxFileSize = 1 << 20
	// DefaultMaxDocuments is the most YAML documents one file may hold.
	DefaultMaxDocuments = 1000
	// DefaultMaxReplicas is the most pods one workload may ask for
	// (replicas, or a Job's parallelism).
	DefaultMaxReplicas = 1000
	// DefaultMaxPods is the most pods a revision may run on the node at
	// once, all workloads together.
	DefaultMaxPods = 5000
)

// maxDepth bounds how deep Load looks for objects in a CUE package.
const maxDepth = 64

// Options tunes Load. The zero value is ready to use.
type Options struct {
	// MaxFileSize is the largest file, in bytes, Load reads; a larger one is
	// an error. Zero means DefaultMaxFileSize.
	MaxFileSize int64
	// MaxDocuments is the most YAML documents one file may hold; more is an
	// error. Zero means DefaultMaxDocuments.
	MaxDocuments int
	// MaxReplicas is the most pods one workload may ask for (replicas, or a
	// Job's parallelism); more is an error at the field. Zero means
	// DefaultMaxReplicas.
	MaxReplicas int32
	// MaxPods is the most pods the revision may run on the node at once,
	// all workloads together; more is an error at the workload that
	// crosses it. Zero means DefaultMaxPods.
	MaxPods int
	// Strict makes objects of kinds berth does not run (Service,
	// PersistentVolumeClaim, …) errors instead of warnings.
	Strict bool
	// Node is the host the revision is loaded for. CUE files see its name
	// and labels as tags (@tag(node), @tag(zone)) and in @if conditions.
	Node reconcile.Node
	// Cache, when set, keeps results between calls so that unchanged files
	// are not validated again.
	Cache *Cache
	// Sandbox, when set, evaluates CUE packages in a child process under a
	// deadline and a memory bound. Without it CUE runs in this process,
	// unbounded.
	Sandbox *Sandbox
	// Decrypt, when set, is given each YAML and JSON file (its name as in
	// positions, "./…", and its bytes) and returns what to load instead:
	// package secrets decrypts SOPS-encrypted files with it, keeping line
	// numbers. An error refuses the file; when it has a Position() (line,
	// column) method the diagnostic points there. Its output must not
	// depend on anything but the name and bytes (the cache keys by them).
	Decrypt func(name string, data []byte) ([]byte, error)
}

// Validate checks o and fills in defaults.
func (o *Options) Validate() error {
	if o.MaxFileSize < 0 || o.MaxDocuments < 0 || o.MaxReplicas < 0 || o.MaxPods < 0 {
		return errors.New("schema options: limits must not be negative")
	}
	if o.MaxFileSize == 0 {
		o.MaxFileSize = DefaultMaxFileSize
	}
	if o.MaxDocuments == 0 {
		o.MaxDocuments = DefaultMaxDocuments
	}
	if o.MaxReplicas == 0 {
		o.MaxReplicas = DefaultMaxReplicas
	}
	if o.MaxPods == 0 {
		o.MaxPods = DefaultMaxPods
	}
	return nil
}

// Result is what a revision declares.
type Result struct {
	// Objects are the validated objects, sorted by file and position.
	Objects []reconcile.Object
	// Warnings are problems that do not fail the revision.
	Warnings []Diagnostic
}

// Load reads every object of the repository snapshot fsys, validates each
// against the schema for its kind and decodes it.
//
// If any object or file has a problem, Load returns a nil Result and an
// *Error holding every diagnostic of the revision. Other errors (fsys cannot
// be read at all, bad options) are returned as they are.
func Load(fsys fs.FS, opts Options) (*Result, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if _, err := fs.Stat(fsys, "."); err != nil {
		return nil, fmt.Errorf("load objects: %w", err)
	}
	l := &loader{fsys: fsys, opts: opts, cueDirs: map[string][]cueFile{}}
	l.readTree()
	l.prepareCUE()
	rev := l.revisionKey()
	if opts.Cache != nil {
		if res, err, ok := opts.Cache.revision(rev); ok {
			return res, err
		}
	}
	l.loadDataFiles()
	if err := l.loadCUEPackages(); err != nil {
		return nil, err
	}
	slices.SortStableFunc(l.loaded, func(a, b loaded) int { return comparePos(a.Obj.Source, b.Obj.Source) })

	var objects []reconcile.Object
	first := map[string]reconcile.Position{}
	for _, lo := range l.loaded {
		obj := lo.Obj
		if key := obj.Key(); obj.Kind != "" && obj.Metadata.Name != "" {
			if prev, dup := first[key]; dup {
				msg := "duplicate object: also declared at " + prev.String()
				if prev == obj.Source {
					msg = "duplicate object: declared again by the CUE package of a subdirectory (a package includes the files of the same package in the directories above it)"
				}
				l.diags = append(l.diags, Diagnostic{Pos: obj.Source, Object: key, Message: msg})
				continue
			}
			first[key] = obj.Source
		}
		if lo.OK {
			objects = append(objects, obj)
		}
	}

	diags := sortDiagnostics(append(l.diags, checkRevision(l.loaded, opts.Node, opts.MaxPods)...))
	var warnings []Diagnostic
	failed := false
	for _, d := range diags {
		if d.Severity == SeverityError {
			failed = true
		} else {
			warnings = append(warnings, d)
		}
	}
	var res *Result
	var err error
	if failed {
		err = &Error{Diagnostics: diags}
	} else {
		res = &Result{Objects: objects, Warnings: warnings}
	}
	if opts.Cache != nil {
		opts.Cache.finish(rev, res, err)
	}
	return res, err
}

// loaded is an object after validation; ok tells whether it is valid.
// Invalid objects are kept for duplicate detection.
type loaded struct {
	Obj reconcile.Object
	OK  bool
	// Facts are what the object refers to and claims, for the checks
	// across the revision.
	Facts facts
	// Key identifies a valid object of a CUE package by its content and
	// place, for the cache; Ref, when set, says the object is the cached
	// one with that key and Obj is empty.
	Key, Ref key
}

// candidate is a value that declares an object, before validation.
type candidate struct {
	// d is the user's value.
	d cue.Value
	// start is where the object starts.
	start reconcile.Position
	// fromCUE tells a value of a CUE package from a YAML or JSON document.
	fromCUE bool
	// json is the object's data as JSON, when already known.
	json []byte
	// big are the data maps taken out of the document (takeBigMaps).
	big []bigMap
}

// plainData returns the concrete data of v as a new value without the
// evaluation behind it, or false if v is not concrete.
func (l *loader) plainData(v cue.Value, b []byte) (cue.Value, bool) {
	if b == nil {
		var err error
		if b, err = v.MarshalJSON(); err != nil {
			return cue.Value{}, false
		}
	}
	expr, err := json.Extract("", b)
	if err != nil {
		return cue.Value{}, false
	}
	p := l.ctx.BuildExpr(expr)
	return p, p.Err() == nil
}

type loader struct {
	fsys   fs.FS
	opts   Options
	ctx    *cue.Context
	schema cue.Value
	diags  []Diagnostic
	loaded []loaded

	// Files found by readTree: YAML and JSON files in walk order, and the
	// .cue files of each directory.
	dataFiles []cueFile
	cueDirs   map[string][]cueFile
	cueOrder  []string
	// module is the CUE module path of the repository (cue.mod/module.cue),
	// under which its packages import each other.
	module string
	// jobs are the CUE packages to evaluate, prepared by prepareCUE.
	jobs []*cueJob
	// known are the keys of the CUE objects the cache holds.
	known map[key]bool
}

// pathErr drops the operation and path from a *fs.PathError, which the
// diagnostic's position already names.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// fileName turns a path of fsys into the name used in positions.
func fileName(p string) string { return "./" + p }

func (l *loader) errorf(file string, format string, args ...any) {
	l.diags = append(l.diags, Diagnostic{
		Pos:     reconcile.Position{File: fileName(file)},
		Message: fmt.Sprintf(format, args...),
	})
}

func (l *loader) errorAt(pos token.Pos, file, format string, args ...any) {
	p := reconcile.Position{File: fileName(file)}
	if isUserPos(pos) {
		p = toPosition(pos)
	}
	l.diags = append(l.diags, Diagnostic{Pos: p, Message: fmt.Sprintf(format, args...)})
}

// cueErrors reports CUE errors that are not about one object (syntax
// errors, conflicts in a CUE package).
func (l *loader) cueErrors(err error, file string) {
	for _, e := range cueerrors.Errors(err) {
		format, args := e.Msg()
		if strings.HasSuffix(format, "errors in empty disjunction:") && len(cueerrors.Errors(err)) > 1 {
			continue
		}
		p := reconcile.Position{File: fileName(file)}
		if up := userPos(e); up.IsValid() {
			p = toPosition(up)
		}
		var path string
		if ps := e.Path(); len(ps) > 0 {
			path = strings.Join(ps, ".")
		}
		msg := fmt.Sprintf(format, args...)
		if c := cause(e); c != "" {
			msg += ": " + c
		}
		if format == "import failed" {
			path = "" // the importing package's
		}
		if f, ok := strings.CutPrefix(msg, "yaml: "); ok {
			msg = "invalid YAML: " + f
		}
		if mayHoldSecret(e.Path()) && len(args) > 0 {
			// A conflict inside data or stringData could quote a Secret's
			// value: say what is wrong without the values.
			msg = "invalid value (values are not shown, as they may be secret): " + fmtVerb.ReplaceAllString(format, "…")
		}
		l.diags = append(l.diags, Diagnostic{Pos: p, Path: path, Message: msg})
	}
}

// cause returns the message of the CUE error e wraps, without positions,
// or "".
func cause(e cueerrors.Error) string {
	var w cueerrors.Error
	if !errors.As(errors.Unwrap(e), &w) {
		return ""
	}
	format, args := w.Msg()
	msg := fmt.Sprintf(format, args...)
	if c := cause(w); c != "" {
		msg += ": " + c
	}
	return msg
}

// fmtVerb matches a verb of a format string.
var fmtVerb = regexp.MustCompile(`%[-+# 0-9.]*[a-zA-Z]`)

// mayHoldSecret reports whether a CUE error at path could be about a
// Secret's value: a path through a field named data or stringData.
func mayHoldSecret(path []string) bool {
	return slices.Contains(path, "data") || slices.Contains(path, "stringData")
}

// guard turns a panic while handling file into a diagnostic, so bad input
// never takes berth down.
func (l *loader) guard(file string) {
	if r := recover(); r != nil {
		l.errorf(file, "internal error while evaluating this file: %v", r)
	}
}

// readTree walks fsys and reads every supported file. Hidden files and
// directories (a name starting with '.'), CUE's module directory cue.mod
// and the rollout policy at the root (berth-rollout.*) are skipped. The
// .cue files of one directory form one CUE package.
func (l *loader) readTree() {
	_ = fs.WalkDir(l.fsys, ".", func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			l.errorf(p, "cannot read: %v", pathErr(err))
			return nil
		}
		name := de.Name()
		if p != "." && (strings.HasPrefix(name, ".") || de.IsDir() && name == "cue.mod") {
			if de.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		ext := path.Ext(name)
		if p == name && strings.HasPrefix(name, "berth-rollout.") {
			// The fleet's rollout policy (package fleet/rollout), not a
			// manifest.
			return nil
		}
		if de.IsDir() || (ext != ".yaml" && ext != ".yml" && ext != ".json" && ext != ".cue") {
			return nil
		}
		data, ok := l.readFile(p, de)
		decrypted := false
		if ok && ext != ".cue" && l.opts.Decrypt != nil {
			read := data
			data, ok = l.decrypt(p, data)
			decrypted = ok && !bytes.Equal(read, data)
		}
		if !ok {
			return nil
		}
		if ext == ".cue" {
			dir := path.Dir(p)
			if _, seen := l.cueDirs[dir]; !seen {
				l.cueOrder = append(l.cueOrder, dir)
			}
			l.cueDirs[dir] = append(l.cueDirs[dir], cueFile{name: p, data: data})
			return nil
		}
		l.dataFiles = append(l.dataFiles, cueFile{name: p, data: data, decrypted: decrypted})
		return nil
	})
}

// readFile reads the file p of the walk, following a symbolic link inside
// the repository.
func (l *loader) readFile(p string, de fs.DirEntry) ([]byte, bool) {
	target := p
	switch {
	case de.Type()&fs.ModeSymlink != 0:
		var ok bool
		if target, ok = l.resolveLink(p); !ok {
			return nil, false
		}
	case !de.Type().IsRegular():
		return nil, false
	}
	return l.read(p, target)
}

// loadData loads a YAML or JSON file.
func (l *loader) loadData(f cueFile) {
	switch path.Ext(f.name) {
	case ".yaml", ".yml":
		l.loadYAML(f.name, f.data)
	case ".json":
		l.loadJSON(f.name, f.data)
	}
}

// resolveLink follows the symbolic link p inside fsys and returns the regular
// file it names. A link that leaves fsys, or goes through a linked directory,
// is an error; a link to a directory is skipped (its files are loaded where
// they are).
func (l *loader) resolveLink(p string) (string, bool) {
	rl, ok := l.fsys.(fs.ReadLinkFS)
	if !ok {
		l.errorf(p, "symbolic link not followed: the source cannot read links")
		return "", false
	}
	cur := p
	for range 40 {
		target, err := rl.ReadLink(cur)
		if err != nil {
			l.errorf(p, "cannot read symbolic link: %v", pathErr(err))
			return "", false
		}
		next := path.Join(path.Dir(cur), target)
		if path.IsAbs(target) || next == ".." || strings.HasPrefix(next, "../") {
			l.errorf(p, "symbolic link points outside the repository")
			return "", false
		}
		// Every directory on the way must be a real one: a linked directory
		// could lead anywhere.
		for dir := path.Dir(next); dir != "."; dir = path.Dir(dir) {
			fi, err := rl.Lstat(dir)
			if err != nil || fi.Mode()&fs.ModeSymlink != 0 || !fi.IsDir() {
				l.errorf(p, "symbolic link not followed: %s is not a plain directory", fileName(dir))
				return "", false
			}
		}
		fi, err := rl.Lstat(next)
		if err != nil {
			l.errorf(p, "broken symbolic link to %s", fileName(next))
			return "", false
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			cur = next
		case fi.Mode().IsRegular():
			return next, true
		default:
			return "", false
		}
	}
	l.errorf(p, "too many levels of symbolic links")
	return "", false
}

// read returns the content of target, the file behind p, within the size
// limit.
func (l *loader) read(p, target string) ([]byte, bool) {
	f, err := l.fsys.Open(target)
	if err != nil {
		l.errorf(p, "cannot read: %v", pathErr(err))
		return nil, false
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > l.opts.MaxFileSize {
		l.errorf(p, "file is larger than the limit of %s", formatSize(l.opts.MaxFileSize))
		return nil, false
	}
	data, err := io.ReadAll(io.LimitReader(f, l.opts.MaxFileSize+1))
	if err != nil {
		l.errorf(p, "cannot read: %v", err)
		return nil, false
	}
	if int64(len(data)) > l.opts.MaxFileSize {
		l.errorf(p, "file is larger than the limit of %s", formatSize(l.opts.MaxFileSize))
		return nil, false
	}
	return data, true
}

func formatSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// loadYAML reads the documents of a YAML file; each non-empty document is
// one object. KYAML, being YAML, needs nothing special.
func (l *loader) loadYAML(p string, data []byte) {
	defer l.guard(p)
	if l.emptyFile(p, data) {
		return
	}
	data = normalizeBreaks(data)
	dec := yaml.NewDecoder(fileName(p), bytes.NewReader(data))
	for n := 0; ; n++ {
		expr, err := dec.Extract()
		if err == io.EOF {
			return
		}
		if err != nil {
			l.yamlError(err, p, data)
			return
		}
		if n == l.opts.MaxDocuments {
			l.errorAt(expr.Pos(), p, "file has more than %d documents", l.opts.MaxDocuments)
			return
		}
		if lit, ok := expr.(*ast.BasicLit); ok && lit.Kind == token.NULL {
			continue // an empty document
		}
		if l.duplicateKeys(expr) {
			continue
		}
		fixFloatLiterals(expr)
		l.addDocument(p, expr)
	}
}

// emptyFile reports, with a warning at 1:1, a YAML or JSON file that holds
// nothing but white space: it declares no object, which is allowed but
// likely a mistake.
func (l *loader) emptyFile(p string, data []byte) bool {
	if len(bytes.TrimSpace(data)) > 0 {
		return false
	}
	l.diags = append(l.diags, Diagnostic{Pos: reconcile.Position{File: fileName(p), Line: 1, Column: 1},
		Severity: SeverityWarning, Message: "empty file: it declares no object"})
	return true
}

// duplicateKeys reports every key of a YAML mapping that repeats an
// earlier key of the same mapping, which kubectl refuses and a YAML decoder
// would silently merge or overwrite. It reports whether there was one.
func (l *loader) duplicateKeys(expr ast.Expr) bool {
	found := false
	ast.Walk(expr, func(n ast.Node) bool {
		s, ok := n.(*ast.StructLit)
		if !ok {
			return true
		}
		seen := map[string]token.Pos{}
		for _, e := range s.Elts {
			f, ok := e.(*ast.Field)
			if !ok {
				continue
			}
			name, _, err := ast.LabelName(f.Label)
			if err != nil {
				continue
			}
			if prev, dup := seen[name]; dup {
				l.diags = append(l.diags, Diagnostic{Pos: toPosition(f.Label.Pos()),
					Message: fmt.Sprintf("duplicate key %q: already set on line %d of this mapping (kubectl refuses such a file)", name, prev.Line())})
				found = true
				continue
			}
			seen[name] = f.Label.Pos()
		}
		return true
	}, nil)
	return found
}

// fixFloatLiterals undoes how CUE's YAML decoder writes a number that YAML
// typed as a float but that looks like an integer (an integer too large for
// 64 bits, or !!float 123): as the literal "number & 123", which does not
// compile. The plain number compiles, and the schema then judges its range.
func fixFloatLiterals(expr ast.Expr) {
	ast.Walk(expr, func(n ast.Node) bool {
		if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.FLOAT {
			lit.Value = strings.TrimPrefix(lit.Value, "number & ")
		}
		return true
	}, nil)
}

// yamlBreaks are the line breaks of YAML other than "\n": the YAML parser
// counts lines with all of them, CUE's position table only with "\n".
var yamlBreaks = strings.NewReplacer("\r\n", "\n", "\r", "\n", "\u0085", "\n", "\u2028", "\n", "\u2029", "\n")

// normalizeBreaks turns every YAML line break into "\n", so that line
// numbers agree (and CUE's decoder does not index past its table).
func normalizeBreaks(data []byte) []byte {
	if !bytes.ContainsAny(data, "\r\u0085\u2028\u2029") {
		return data
	}
	return []byte(yamlBreaks.Replace(string(data)))
}

// yamlError reports a YAML syntax error. The YAML parser gives only the
// line, as "file:line: message"; the column is taken to be the first
// non-blank character of that line, which is where the offending token
// usually is.
func (l *loader) yamlError(err error, p string, data []byte) {
	msg := err.Error()
	pos := reconcile.Position{File: fileName(p)}
	if rest, ok := strings.CutPrefix(msg, fileName(p)+":"); ok {
		msg = strings.TrimSpace(rest)
		if num, text, ok := strings.Cut(msg, ": "); ok {
			if line, err := strconv.Atoi(num); err == nil && line > 0 {
				pos.Line, pos.Column = line, firstColumn(data, line)
				msg = text
			}
		}
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	l.diags = append(l.diags, Diagnostic{Pos: pos, Message: "invalid YAML: " + msg})
}

// firstColumn returns the column of the first non-blank byte of line in
// data, or 1.
func firstColumn(data []byte, line int) int {
	for i := 1; i < line; i++ {
		nl := bytes.IndexByte(data, '\n')
		if nl < 0 {
			return 1
		}
		data = data[nl+1:]
	}
	if nl := bytes.IndexByte(data, '\n'); nl >= 0 {
		data = data[:nl]
	}
	if i := bytes.IndexFunc(data, func(r rune) bool { return r != ' ' && r != '\r' }); i >= 0 {
		return i + 1
	}
	return 1
}

// loadJSON reads a JSON file holding one object.
func (l *loader) loadJSON(p string, data []byte) {
	defer l.guard(p)
	if l.emptyFile(p, data) {
		return
	}
	expr, err := json.Extract(fileName(p), data)
	if err != nil {
		pos := reconcile.Position{File: fileName(p)}
		if e, ok := err.(cueerrors.Error); ok && isUserPos(e.Position()) {
			pos = toPosition(e.Position())
		}
		msg := "invalid JSON"
		if cause := errors.Unwrap(err); cause != nil {
			msg += ": " + cause.Error()
		}
		l.diags = append(l.diags, Diagnostic{Pos: pos, Message: msg})
		return
	}
	l.addDocument(p, expr)
}

// nullableData are the top-level fields of a ConfigMap or Secret that
// may be null, as in manifests generated with nothing in them: null is an
// empty map.
var nullableData = map[string]bool{"data": true, "binaryData": true, "stringData": true}

// dropNullData removes the null data fields of a ConfigMap or Secret
// document.
func dropNullData(expr ast.Expr) {
	s, ok := expr.(*ast.StructLit)
	if !ok {
		return
	}
	isConfig := false
	for _, d := range s.Elts {
		if f, ok := d.(*ast.Field); ok {
			name, _, _ := ast.LabelName(f.Label)
			lit, isLit := f.Value.(*ast.BasicLit)
			isConfig = isConfig || name == "kind" && isLit && (lit.Value == `"ConfigMap"` || lit.Value == `"Secret"`)
		}
	}
	if !isConfig {
		return
	}
	s.Elts = slices.DeleteFunc(s.Elts, func(d ast.Decl) bool {
		f, ok := d.(*ast.Field)
		if !ok {
			return false
		}
		name, _, err := ast.LabelName(f.Label)
		lit, isLit := f.Value.(*ast.BasicLit)
		return err == nil && nullableData[name] && isLit && lit.Kind == token.NULL
	})
}

// addDocument records a YAML or JSON document as a candidate object.
func (l *loader) addDocument(p string, expr ast.Expr) {
	dropNullData(expr)
	big := takeBigMaps(expr)
	d := l.ctx.BuildExpr(expr)
	if err := d.Err(); err != nil {
		l.cueErrors(err, p)
		return
	}
	start := reconcile.Position{File: fileName(p), Line: 1, Column: 1}
	if pos := expr.Pos(); isUserPos(pos) {
		start = toPosition(pos)
	}
	if k := d.IncompleteKind(); k != cue.StructKind {
		l.diags = append(l.diags, Diagnostic{Pos: start,
			Message: "document must be an object with apiVersion and kind, got " + kindName(k)})
		return
	}
	l.add(candidate{d: d, start: start, big: big})
}

type cueFile struct {
	name string
	data []byte
	// decrypted says data is the plain text of an encrypted file.
	decrypted bool
}

// findObjects records every struct in v, at any depth of regular fields and
// list elements, that has concrete string fields apiVersion and kind.
func (l *loader) findObjects(v cue.Value, depth int) {
	if depth > maxDepth {
		return
	}
	switch v.IncompleteKind() {
	case cue.StructKind:
		if isObject(v) {
			start := reconcile.Position{}
			if pos := v.Pos(); isUserPos(pos) {
				start = toPosition(pos)
			}
			l.add(candidate{d: v, start: start, fromCUE: true})
			return
		}
		it, err := v.Fields()
		if err != nil {
			return
		}
		for it.Next() {
			l.findObjects(it.Value(), depth+1)
		}
	case cue.ListKind:
		it, err := v.List()
		if err != nil {
			return
		}
		for it.Next() {
			l.findObjects(it.Value(), depth+1)
		}
	}
}

func isObject(v cue.Value) bool {
	for _, f := range []string{"apiVersion", "kind"} {
		fv := v.LookupPath(cue.MakePath(cue.Str(f)))
		if !fv.Exists() || !fv.IsConcrete() || fv.Kind() != cue.StringKind {
			return false
		}
	}
	return true
}

// add validates c right away, so that its CUE values can be freed before the
// next file is read, and records the result.
func (l *loader) add(c candidate) {
	if c.fromCUE {
		l.addCUE(c)
		return
	}
	obj, f, ok := l.validate(c)
	l.loaded = append(l.loaded, loaded{Obj: obj, OK: ok, Facts: f})
}

// addCUE validates an object of a CUE package, unless the cache already
// holds it: an object is known by its data and where it starts, so a
// package changed in one file validates only the objects that changed.
func (l *loader) addCUE(c candidate) {
	b, err := c.d.MarshalJSON()
	if err != nil {
		obj, f, ok := l.validate(c)
		l.loaded = append(l.loaded, loaded{Obj: obj, OK: ok, Facts: f})
		return
	}
	h := l.newKeyHash("object")
	writeField(h, c.start.String())
	writeField(h, string(b))
	k := sum(h)
	if l.known[k] {
		l.loaded = append(l.loaded, loaded{OK: true, Ref: k})
		return
	}
	c.json = b
	obj, f, ok := l.validate(c)
	lo := loaded{Obj: obj, OK: ok, Facts: f}
	if ok {
		lo.Key = k
	}
	l.loaded = append(l.loaded, lo)
}

// validate checks one candidate and decodes it. It returns the object (with
// at least its identity filled in), what it refers to and claims, and
// whether it is valid.
func (l *loader) validate(c candidate) (obj reconcile.Object, f facts, ok bool) {
	obj, ok = l.validateObject(c, &f)
	return obj, f, ok
}

func (l *loader) validateObject(c candidate, f *facts) (obj reconcile.Object, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			l.diags = append(l.diags, Diagnostic{Pos: c.start, Object: obj.Key(),
				Message: fmt.Sprintf("internal error while validating: %v", r)})
			ok = false
		}
	}()
	obj = identity(c.d)
	obj.Source = c.start
	x := &validator{ctx: l.ctx, object: objectName(obj), root: c.d, start: c.start, strict: l.opts.Strict, maxReplicas: l.opts.MaxReplicas}
	defer func() { l.diags, *f = append(l.diags, x.diags...), x.facts }()

	kindV := c.d.LookupPath(cue.MakePath(cue.Str("kind")))
	if !kindV.Exists() {
		x.report(c.d.Pos(), sel("kind"), "required field is missing")
		return obj, false
	}
	if obj.Kind == "" {
		x.report(valuePos(kindV), sel("kind"), "must be a string, got "+kindName(kindV.IncompleteKind()))
		return obj, false
	}
	if why, skip := notRun[obj.Kind]; skip {
		sev := SeverityWarning
		if l.opts.Strict {
			sev = SeverityError
		}
		x.diags = append(x.diags, Diagnostic{Pos: x.position(valuePos(kindV)), Object: x.object, Path: "kind",
			Severity: sev, Message: fmt.Sprintf("%s is not run by berth and is skipped: %s", obj.Kind, why)})
		return obj, false
	}
	if use, removed := removedAPIs[obj.APIVersion+" "+obj.Kind]; removed {
		apiV := c.d.LookupPath(cue.MakePath(cue.Str("apiVersion")))
		x.report(valuePos(apiV), sel("apiVersion"), fmt.Sprintf("%s %s is no longer served by Kubernetes; use apiVersion %q", obj.APIVersion, obj.Kind, use))
		return obj, false
	}
	info, known := kinds[obj.Kind]
	if !known {
		x.report(valuePos(kindV), sel("kind"), fmt.Sprintf("%q is not supported by berth; supported kinds: %s",
			obj.Kind, strings.Join(slices.Sorted(maps.Keys(kinds)), ", ")))
		return obj, false
	}
	def := l.schema.LookupPath(cue.ParsePath(info.definition))
	// A value of a CUE package carries the package's whole evaluation;
	// its plain data validates much faster. The package's own value is used
	// again only to explain a problem at its place in the user's files.
	data := c.d
	if c.fromCUE {
		if plain, ok := l.plainData(c.d, c.json); ok {
			data = plain
		}
	}
	x.plain = data
	u := def.Unify(data)
	if err := u.Validate(cue.Concrete(true)); err != nil {
		if c.fromCUE {
			u = def.Unify(c.d)
		}
		// Find and explain every problem, not only the ones CUE reports.
		x.walk(def, u, c.d, nil)
		if len(x.diags) == 0 {
			x.reportErr(err, def, c.d, nil)
		}
	}
	if len(x.diags) > 0 {
		return obj, false
	}
	// Decode the user's data: it is valid, and cheaper to read than its
	// unification with the schema, whose only default is the namespace.
	if err := data.LookupPath(cue.ParsePath("metadata")).Decode(&obj.Metadata); err != nil {
		x.reportErr(err, def, c.d, sel("metadata"))
		return obj, false
	}
	if obj.Metadata.Namespace == "" {
		obj.Metadata.Namespace = "default"
	}
	if err := info.decode(data, &obj); err != nil {
		var fe *fieldError
		if errors.As(err, &fe) {
			x.reportAt(fe.path, fe.msg)
		} else {
			x.report(c.d.Pos(), nil, "cannot decode: "+err.Error())
		}
		return obj, false
	}
	if len(c.big) > 0 {
		addBigMaps(x, &obj, c.big)
	}
	checkMeta(x, &obj.Metadata)
	info.check(x, &obj)
	return obj, len(x.diags) == x.warnings
}

// identity reads apiVersion, kind, namespace and name from the user's value
// as far as they are strings; the namespace defaults to "default".
func identity(d cue.Value) reconcile.Object {
	str := func(p string) string {
		s, _ := d.LookupPath(cue.ParsePath(p)).String()
		return s
	}
	obj := reconcile.Object{TypeMeta: reconcile.TypeMeta{APIVersion: str("apiVersion"), Kind: str("kind")}}
	obj.Metadata.Name = str("metadata.name")
	obj.Metadata.Namespace = cmp.Or(str("metadata.namespace"), "default")
	return obj
}

// objectName names obj in diagnostics: "Kind/namespace/name", or only the
// kind when the name is unknown.
func objectName(obj reconcile.Object) string {
	if obj.Kind == "" {
		return ""
	}
	if obj.Metadata.Name == "" {
		return obj.Kind
	}
	return obj.Key()
}

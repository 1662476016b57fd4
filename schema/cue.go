package schema

import (
	"fmt"
	"io/fs"
	"maps"
	"path"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing/fstest"
	"unicode/utf8"

	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/build"
	cuelit "cuelang.org/go/cue/literal"
	"cuelang.org/go/cue/parser"
	"cuelang.org/go/cue/token"
	"cuelang.org/go/encoding/json"
	"cuelang.org/go/encoding/yaml"

	"berth.dev/berth/reconcile"
)

// ImportPath is the import path under which CUE files of a repository find
// berth's schema (package k8s), with no network and no cue.mod entry:
//
//	import "berth.dev/k8s"
//
//	web: k8s.#Deployment & {...}
const ImportPath = "berth.dev/k8s"

// cueJob is everything needed to evaluate the CUE package of one directory,
// so that it can be evaluated in a child process.
type cueJob struct {
	// Dir is the package's directory, relative to the repository root.
	Dir string
	// Module is the repository's CUE module path, or "".
	Module string
	// Node supplies the tags and @if conditions.
	Node   reconcile.Node
	Strict bool
	// Files holds the .cue files of Dir and of the packages it imports
	// from the repository, and the files they embed, by path.
	Files map[string][]byte
	// Globs are the embedded glob patterns with the files each matched.
	Globs map[string][]string
	// Known are the keys of valid objects the caller has cached; they are
	// returned as references instead of being validated again.
	Known map[key]bool

	key key
}

// cueResult is what evaluating a cueJob found.
type cueResult struct {
	Loaded []loaded
	Diags  []Diagnostic
}

// readModule reads the module path of cue.mod/module.cue, if there is one.
func (l *loader) readModule() {
	const name = "cue.mod/module.cue"
	if _, err := fs.Stat(l.fsys, name); err != nil {
		return
	}
	data, ok := l.readPath(name)
	if !ok {
		return
	}
	f, err := parser.ParseFile(fileName(name), data)
	if err != nil {
		l.cueErrors(err, name)
		return
	}
	for _, d := range f.Decls {
		fd, ok := d.(*ast.Field)
		if !ok {
			continue
		}
		if n, _, _ := ast.LabelName(fd.Label); n == "module" {
			if lit, ok := fd.Value.(*ast.BasicLit); ok {
				m, _ := strconv.Unquote(lit.Value)
				m, _, _ = strings.Cut(m, "@")
				l.module = m
			}
		}
	}
}

// readPath reads the file p of fsys, following a symbolic link inside the
// repository, within the size limit.
func (l *loader) readPath(p string) ([]byte, bool) {
	target := p
	if rl, ok := l.fsys.(fs.ReadLinkFS); ok {
		fi, err := rl.Lstat(p)
		if err != nil {
			l.errorf(p, "cannot read: %v", pathErr(err))
			return nil, false
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			if target, ok = l.resolveLink(p); !ok {
				return nil, false
			}
		}
	}
	return l.read(p, target)
}

// prepareCUE parses the CUE files of every directory and prepares one job
// per package: the files it needs (its own, those of the packages it
// imports from the repository, those it embeds) and its cache key.
// Problems found here (syntax errors, forbidden imports, embedded files
// outside the repository) are reported and the package is skipped.
func (l *loader) prepareCUE() {
	if len(l.cueOrder) == 0 {
		return
	}
	l.readModule()
	p := &preparer{l: l, parsed: map[string]*prepared{}}
	for _, dir := range l.cueOrder {
		job := &cueJob{Dir: dir, Module: l.module, Node: l.opts.Node, Strict: l.opts.Strict,
			Files: map[string][]byte{}, Globs: map[string][]string{}}
		if !p.collect(job, dir, map[string]bool{}) {
			continue
		}
		h := l.newKeyHash("cue")
		writeField(h, dir)
		writeField(h, l.module)
		nodeKey(h, l.opts.Node)
		for _, name := range slices.Sorted(maps.Keys(job.Files)) {
			writeField(h, name)
			writeField(h, string(job.Files[name]))
		}
		for _, g := range slices.Sorted(maps.Keys(job.Globs)) {
			writeField(h, g)
			writeField(h, strings.Join(job.Globs[g], "\x00"))
		}
		job.key = sum(h)
		l.jobs = append(l.jobs, job)
	}
	// A YAML or JSON file embedded by CUE is configuration, not a manifest.
	embedded := map[string]bool{}
	for _, pd := range p.parsed {
		for name := range pd.embeds {
			embedded[name] = true
		}
	}
	l.dataFiles = slices.DeleteFunc(l.dataFiles, func(f cueFile) bool { return embedded[f.name] })
}

type preparer struct {
	l      *loader
	parsed map[string]*prepared
}

// prepared is a parsed directory: whether it is usable, the repository
// packages it imports and the files it embeds.
type prepared struct {
	ok      bool
	imports []string
	embeds  map[string][]byte
	globs   map[string][]string
}

// collect adds the files of the package in dir, and of every package it
// imports, to job.
func (p *preparer) collect(job *cueJob, dir string, seen map[string]bool) bool {
	if seen[dir] {
		return true
	}
	seen[dir] = true
	pd := p.prepare(dir)
	if !pd.ok {
		return false
	}
	for _, f := range p.l.cueDirs[dir] {
		job.Files[f.name] = f.data
	}
	maps.Copy(job.Files, pd.embeds)
	maps.Copy(job.Globs, pd.globs)
	for _, imp := range pd.imports {
		if !p.collect(job, imp, seen) {
			return false
		}
	}
	return true
}

func (p *preparer) prepare(dir string) *prepared {
	if pd, ok := p.parsed[dir]; ok {
		return pd
	}
	l := p.l
	pd := &prepared{ok: true, embeds: map[string][]byte{}, globs: map[string][]string{}}
	p.parsed[dir] = pd
	for _, file := range l.cueDirs[dir] {
		f, err := parser.ParseFile(fileName(file.name), file.data, parser.ParseComments)
		if err != nil {
			l.cueErrors(err, file.name)
			pd.ok = false
			continue
		}
		if include, err := includeFile(f, l.opts.Node); err != nil {
			l.errorAt(err.pos, file.name, "%s", err.msg)
			pd.ok = false
			continue
		} else if !include {
			continue
		}
		for spec := range f.ImportSpecs() {
			ip, _ := strconv.Unquote(spec.Path.Value)
			switch first, _, _ := strings.Cut(ip, "/"); {
			case ip == ImportPath || !strings.Contains(first, "."):
			case l.module != "" && strings.HasPrefix(ip, l.module+"/"):
				d := strings.TrimPrefix(ip, l.module+"/")
				if _, ok := l.cueDirs[d]; !ok {
					l.errorAt(spec.Pos(), file.name, "import %q: the repository has no CUE package in %s", ip, fileName(d))
					pd.ok = false
					continue
				}
				pd.imports = append(pd.imports, d)
			default:
				l.errorAt(spec.Pos(), file.name, "import %q is not supported: CUE files may import the CUE standard library, %q and packages of this repository's module%s",
					ip, ImportPath, moduleHint(l.module))
				pd.ok = false
			}
		}
		for _, e := range embedAttrs(f) {
			if e.err != "" {
				l.errorAt(e.pos, file.name, "%s", e.err)
				pd.ok = false
				continue
			}
			for _, name := range e.paths(path.Dir(file.name), l.fsys, pd.globs) {
				data, ok := l.readPath(name)
				if !ok {
					pd.ok = false
					continue
				}
				pd.embeds[name] = data
			}
		}
	}
	return pd
}

func moduleHint(module string) string {
	if module == "" {
		return " (declared in cue.mod/module.cue)"
	}
	return fmt.Sprintf(" (%q)", module)
}

// posError is a problem at a position.
type posError struct {
	pos token.Pos
	msg string
}

// includeFile evaluates the file's @if attributes, before the package
// clause, against the node: an identifier is true when the node has a label
// of that name whose value is not "false"; node is the node's name and a
// label name its value in comparisons with == and !=. An unknown name is
// false, never an error.
func includeFile(f *ast.File, node reconcile.Node) (bool, *posError) {
	for _, decl := range f.Preamble() {
		a, ok := decl.(*ast.Attribute)
		if !ok {
			continue
		}
		k, body := a.Split()
		if k != "if" {
			continue
		}
		expr, err := parser.ParseExpr("@if", body)
		if err != nil {
			return false, &posError{a.Pos(), fmt.Sprintf("@if(%s): not an expression: %v", body, err)}
		}
		ok, perr := evalIf(expr, node)
		if perr != "" {
			return false, &posError{a.Pos(), fmt.Sprintf("@if(%s): %s", body, perr)}
		}
		if !ok {
			return false, nil
		}
	}
	return true, nil
}

func evalIf(e ast.Expr, node reconcile.Node) (bool, string) {
	switch e := e.(type) {
	case *ast.ParenExpr:
		return evalIf(e.X, node)
	case *ast.Ident:
		if e.Name == "true" {
			return true, ""
		}
		if e.Name == "false" {
			return false, ""
		}
		v, ok := node.Labels[e.Name]
		return ok && v != "false", ""
	case *ast.BasicLit:
		switch e.Kind {
		case token.TRUE:
			return true, ""
		case token.FALSE:
			return false, ""
		}
	case *ast.UnaryExpr:
		if e.Op == token.NOT {
			v, err := evalIf(e.X, node)
			return !v, err
		}
	case *ast.BinaryExpr:
		switch e.Op {
		case token.LAND, token.LOR:
			x, err := evalIf(e.X, node)
			if err != "" {
				return false, err
			}
			y, err := evalIf(e.Y, node)
			if e.Op == token.LAND {
				return x && y, err
			}
			return x || y, err
		case token.EQL, token.NEQ:
			x, err := ifString(e.X, node)
			if err != "" {
				return false, err
			}
			y, err := ifString(e.Y, node)
			return (x == y) == (e.Op == token.EQL), err
		}
	}
	return false, "only names, strings, !, &&, ||, == and != are allowed"
}

func ifString(e ast.Expr, node reconcile.Node) (string, string) {
	switch e := e.(type) {
	case *ast.ParenExpr:
		return ifString(e.X, node)
	case *ast.Ident:
		if e.Name == "node" {
			return node.Name, ""
		}
		return node.Labels[e.Name], ""
	case *ast.BasicLit:
		if e.Kind == token.STRING {
			s, err := cuelit.Unquote(e.Value)
			if err != nil {
				return "", err.Error()
			}
			return s, ""
		}
	}
	return "", "only names and strings can be compared"
}

// embedAttr is one @embed(file=…) or @embed(glob=…) attribute.
type embedAttr struct {
	field *ast.Field
	pos   token.Pos
	file  string
	glob  string
	typ   string
	err   string
}

// embedAttrs returns the @embed attributes of f's fields.
func embedAttrs(f *ast.File) []*embedAttr {
	var out []*embedAttr
	ast.Walk(f, func(n ast.Node) bool {
		fd, ok := n.(*ast.Field)
		if !ok {
			return true
		}
		for _, a := range fd.Attrs {
			k, body := a.Split()
			if k != "embed" {
				continue
			}
			e := &embedAttr{field: fd, pos: a.Pos()}
			for _, arg := range strings.Split(body, ",") {
				name, val, _ := strings.Cut(strings.TrimSpace(arg), "=")
				if v, err := strconv.Unquote(val); err == nil {
					val = v
				}
				switch name {
				case "file":
					e.file = val
				case "glob":
					e.glob = val
				case "type":
					e.typ = val
				default:
					e.err = fmt.Sprintf("@embed: unknown argument %q (want file=, glob= or type=)", name)
				}
			}
			target := e.file + e.glob
			switch {
			case e.err != "":
			case (e.file == "") == (e.glob == ""):
				e.err = "@embed needs exactly one of file= and glob="
			case path.IsAbs(target) || slices.Contains(strings.Split(target, "/"), ".."):
				e.err = fmt.Sprintf("@embed: %q must be a path inside the package's directory, without '..'", target)
			case e.typ != "" && e.typ != "text" && e.typ != "binary" && e.typ != "json" && e.typ != "yaml":
				e.err = fmt.Sprintf("@embed: type %q is not one of text, binary, json and yaml", e.typ)
			}
			out = append(out, e)
		}
		return true
	}, nil)
	return out
}

// paths returns the files e embeds, relative to the repository root, for a
// file in dir; globs records what each glob matched.
func (e *embedAttr) paths(dir string, fsys fs.FS, globs map[string][]string) []string {
	if e.file != "" {
		return []string{path.Join(dir, e.file)}
	}
	pattern := path.Join(dir, e.glob)
	matches, _ := fs.Glob(fsys, pattern)
	var files []string
	for _, m := range matches {
		if fi, err := fs.Stat(fsys, m); err == nil && !fi.IsDir() && !strings.HasPrefix(path.Base(m), ".") {
			files = append(files, m)
		}
	}
	globs[pattern] = files
	return files
}

// evalJob evaluates one CUE package and validates every object it declares.
func evalJob(job *cueJob) (res cueResult) {
	opts := Options{Node: job.Node, Strict: job.Strict}
	_ = opts.Validate()
	fsys := fstest.MapFS{}
	for name, data := range job.Files {
		fsys[name] = &fstest.MapFile{Data: data}
	}
	l := &loader{fsys: fsys, opts: opts, module: job.Module, known: job.Known}
	defer func() {
		if r := recover(); r != nil {
			l.errorf(job.Dir, "internal error while evaluating this CUE package: %v", r)
		}
		res = cueResult{Loaded: l.loaded, Diags: l.diags}
	}()
	l.ensureCUE()
	l.evalPackage(job)
	return
}

// evalPackage builds the package of job.Dir, with berth's schema and the
// repository's packages importable, tags and embedded files filled in, and
// records every object it declares.
func (l *loader) evalPackage(job *cueJob) {
	bctx := build.NewContext()
	insts := map[string]*build.Instance{}
	var loadFn build.LoadFunc
	loadFn = func(pos token.Pos, ip string) *build.Instance {
		if inst, ok := insts[ip]; ok {
			return inst
		}
		var inst *build.Instance
		switch {
		case ip == ImportPath:
			inst = bctx.NewInstance(ImportPath, nil)
			names, _ := fs.Glob(schemaFS, "k8s/*.cue")
			for _, n := range names {
				src, _ := schemaFS.ReadFile(n)
				f, err := parser.ParseFile(schemaFilePrefix+n, src)
				if err != nil {
					panic("embedded schema: " + err.Error())
				}
				_ = inst.AddSyntax(f)
			}
		case job.Module != "" && strings.HasPrefix(ip, job.Module+"/"):
			dir := strings.TrimPrefix(ip, job.Module+"/")
			inst = bctx.NewInstance(fileName(dir), loadFn)
			if !l.addFiles(inst, job, dir) {
				return nil
			}
		default:
			return nil
		}
		inst.ImportPath = ip
		insts[ip] = inst
		return inst
	}
	inst := bctx.NewInstance(fileName(job.Dir), loadFn)
	if !l.addFiles(inst, job, job.Dir) {
		return
	}
	if err := inst.Complete(); err != nil {
		l.cueErrors(err, job.Dir)
		return
	}
	v := l.ctx.BuildInstance(inst)
	if err := v.Validate(); err != nil {
		l.cueErrors(err, job.Dir)
		return
	}
	l.findObjects(v, 0)
}

// addFiles parses the .cue files of dir in job, applies @if, @tag and
// @embed, and adds them to inst.
func (l *loader) addFiles(inst *build.Instance, job *cueJob, dir string) bool {
	var names []string
	for name := range job.Files {
		if path.Dir(name) == dir && path.Ext(name) == ".cue" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	ok := true
	var pkgName, pkgFile string
	for _, name := range names {
		f, err := parser.ParseFile(fileName(name), job.Files[name], parser.ParseComments)
		if err != nil {
			l.cueErrors(err, name)
			ok = false
			continue
		}
		if include, _ := includeFile(f, job.Node); !include {
			continue
		}
		if pkgFile == "" {
			pkgName, pkgFile = f.PackageName(), name
		} else if n := f.PackageName(); n != pkgName {
			l.errorAt(f.Pos(), name, "package %q differs from package %q of %s: the .cue files of a directory form one package",
				n, pkgName, fileName(pkgFile))
			ok = false
			continue
		}
		// CUE's own embedding needs a module on disk; berth embeds itself,
		// so the file's @extern(embed) is dropped.
		f.Decls = slices.DeleteFunc(f.Decls, func(d ast.Decl) bool {
			a, ok := d.(*ast.Attribute)
			if !ok {
				return false
			}
			k, body := a.Split()
			return k == "extern" && strings.TrimSpace(body) == "embed"
		})
		if !l.injectTags(f, name, job.Node) || !l.injectEmbeds(f, name, job) {
			ok = false
			continue
		}
		if err := inst.AddSyntax(f); err != nil {
			l.cueErrors(err, name)
			ok = false
		}
	}
	return ok && pkgFile != ""
}

// injectTags fills in fields marked @tag(name) or @tag(name,type=int|number|bool|string)
// with the node's value for name: "node" is the node's name, any other name
// a label of the node. A tag the node does not have leaves the field as it
// is, so a default applies.
func (l *loader) injectTags(f *ast.File, name string, node reconcile.Node) bool {
	ok := true
	ast.Walk(f, func(n ast.Node) bool {
		fd, isField := n.(*ast.Field)
		if !isField {
			return true
		}
		for _, a := range fd.Attrs {
			k, body := a.Split()
			if k != "tag" {
				continue
			}
			args := strings.Split(body, ",")
			tag := strings.TrimSpace(args[0])
			if s, err := strconv.Unquote(tag); err == nil {
				tag = s
			}
			typ := "string"
			for _, arg := range args[1:] {
				if v, found := strings.CutPrefix(strings.TrimSpace(arg), "type="); found {
					typ = v
				}
			}
			val, has := node.Labels[tag]
			if tag == "node" {
				val, has = node.Name, node.Name != ""
			}
			if !has {
				continue
			}
			var lit ast.Expr
			switch typ {
			case "string":
				lit = ast.NewString(val)
			case "int", "number":
				if _, err := strconv.ParseFloat(val, 64); err != nil || (typ == "int" && strings.ContainsAny(val, ".eE")) {
					l.errorAt(a.Pos(), name, "@tag(%s): node value %q is not of type %s", tag, val, typ)
					ok = false
					continue
				}
				lit = &ast.BasicLit{Kind: token.INT, Value: val}
				if typ == "number" {
					lit = &ast.BasicLit{Kind: token.FLOAT, Value: val}
				}
			case "bool":
				b, err := strconv.ParseBool(val)
				if err != nil {
					l.errorAt(a.Pos(), name, "@tag(%s): node value %q is not of type bool", tag, val)
					ok = false
					continue
				}
				lit = ast.NewBool(b)
			default:
				l.errorAt(a.Pos(), name, "@tag(%s): type %q is not one of string, int, number and bool", tag, typ)
				ok = false
				continue
			}
			ast.SetPos(lit, a.Pos())
			fd.Value = &ast.BinaryExpr{X: &ast.ParenExpr{X: fd.Value}, Op: token.AND, Y: lit}
		}
		return true
	}, nil)
	return ok
}

// injectEmbeds replaces the value of every field marked @embed with the
// embedded file: text as a string, binary as bytes, JSON and YAML (by type
// or extension) as values; a glob gives a struct keyed by file path.
func (l *loader) injectEmbeds(f *ast.File, name string, job *cueJob) bool {
	ok := true
	dir := path.Dir(name)
	for _, e := range embedAttrs(f) {
		if e.err != "" {
			l.errorAt(e.pos, name, "%s", e.err)
			ok = false
			continue
		}
		if e.file != "" {
			p := path.Join(dir, e.file)
			expr, msg := embedValue(p, e.typ, job.Files)
			if msg != "" {
				l.errorAt(e.pos, name, "@embed(file=%s): %s", e.file, msg)
				ok = false
				continue
			}
			e.field.Value = expr
			continue
		}
		st := &ast.StructLit{}
		for _, p := range job.Globs[path.Join(dir, e.glob)] {
			expr, msg := embedValue(p, e.typ, job.Files)
			if msg != "" {
				l.errorAt(e.pos, name, "@embed(glob=%s): %s: %s", e.glob, fileName(p), msg)
				ok = false
				continue
			}
			rel := strings.TrimPrefix(p, dir+"/")
			st.Elts = append(st.Elts, &ast.Field{Label: ast.NewString(rel), Value: expr})
		}
		e.field.Value = st
	}
	return ok
}

func embedValue(p, typ string, files map[string][]byte) (ast.Expr, string) {
	data, ok := files[p]
	if !ok {
		return nil, "file not found"
	}
	if typ == "" {
		switch path.Ext(p) {
		case ".json":
			typ = "json"
		case ".yaml", ".yml":
			typ = "yaml"
		default:
			return nil, "the file type is not known from its name; add type=text, binary, json or yaml"
		}
	}
	switch typ {
	case "text":
		if !utf8.Valid(data) {
			return nil, "file is not UTF-8 text; use type=binary"
		}
		return ast.NewString(string(data)), ""
	case "binary":
		return &ast.BasicLit{Kind: token.STRING, Value: cuelit.Bytes.Quote(string(data))}, ""
	case "json":
		expr, err := json.Extract(fileName(p), data)
		if err != nil {
			return nil, "invalid JSON: " + err.Error()
		}
		return expr, ""
	case "yaml":
		expr, err := yaml.NewDecoder(fileName(p), strings.NewReader(string(normalizeBreaks(data)))).Extract()
		if err != nil {
			return nil, "invalid YAML: " + err.Error()
		}
		return expr, ""
	}
	return nil, "unknown type " + typ
}

// loadCUEPackages evaluates the prepared CUE packages, in a child process
// when Options.Sandbox is set, taking results from the cache where it can.
func (l *loader) loadCUEPackages() error {
	var todo []*cueJob
	for _, j := range l.jobs {
		if l.opts.Cache != nil {
			if e, ok := l.opts.Cache.get(j.key); ok {
				l.opts.Cache.resolve(e.loaded) // keeps its objects known
				l.loaded = append(l.loaded, e.loaded...)
				l.diags = append(l.diags, e.diags...)
				continue
			}
		}
		todo = append(todo, j)
	}
	if len(todo) == 0 {
		return nil
	}
	if l.opts.Cache != nil {
		known := l.opts.Cache.objectKeys()
		for _, j := range todo {
			j.Known = known
		}
	}
	var results []cueResult
	if l.opts.Sandbox != nil {
		var err error
		if results, err = l.opts.Sandbox.run(todo); err != nil {
			return err
		}
	} else {
		results = make([]cueResult, len(todo))
		var wg sync.WaitGroup
		next := make(chan int)
		for range min(runtime.GOMAXPROCS(0), len(todo)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					results[i] = evalJob(todo[i])
				}
			}()
		}
		for i := range todo {
			next <- i
		}
		close(next)
		wg.Wait()
	}
	for i, r := range results {
		if l.opts.Cache != nil {
			if !l.opts.Cache.resolve(r.Loaded) {
				// The cache lost an object meanwhile: evaluate in full.
				j := *todo[i]
				j.Known = nil
				if l.opts.Sandbox != nil {
					rs, err := l.opts.Sandbox.run([]*cueJob{&j})
					if err != nil {
						return err
					}
					r = rs[0]
				} else {
					r = evalJob(&j)
				}
				l.opts.Cache.resolve(r.Loaded)
			}
			l.opts.Cache.put(todo[i].key, &cacheEntry{loaded: r.Loaded, diags: r.Diags})
		}
		l.loaded = append(l.loaded, r.Loaded...)
		l.diags = append(l.diags, r.Diags...)
	}
	return nil
}

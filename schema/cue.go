package schema

import (
	"context"
	stdjson "encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/build"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/inject/embed"
	"cuelang.org/go/cue/load"
	"cuelang.org/go/cue/parser"
	"cuelang.org/go/cue/token"
	"cuelang.org/go/mod/modfile"
	"cuelang.org/go/mod/module"

	"berth.dev/berth/reconcile"
)

// ImportPath is the import path under which CUE files of a repository find
// berth's schema (package k8s), with no network and no cue.mod entry:
//
//	import "berth.dev/k8s"
//
//	web: k8s.#Deployment & {...}
const ImportPath = "berth.dev/k8s"

// schemaDir is where the CUE loader finds berth's schema: CUE's directory of
// generated packages, which a module imports without a dependency. A copy
// of the schema a repository keeps there (for the cue command) is replaced
// by berth's own.
const schemaDir = "cue.mod/gen/" + ImportPath

// modulePath and languageVersion make the module berth assumes for a
// repository without cue.mod/module.cue, so that berth.dev/k8s and @embed
// work there too.
const (
	modulePath      = "berth.local/repository@v0"
	languageVersion = "v0.17.0"
)

// cueJob is everything needed to evaluate the CUE package of one directory,
// so that it can be evaluated in a child process.
type cueJob struct {
	// Dir is the package's directory, relative to the repository root.
	Dir string
	// Node supplies the tags, tag variables and @if conditions.
	Node        reconcile.Node
	Strict      bool
	MaxReplicas int32
	// Files is what the CUE loader may read, by path: cue.mod's files, the
	// .cue files of Dir, of the directories above it and of the
	// repository's packages it imports, and the files they embed.
	Files map[string][]byte
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

// sandboxLoaded is a loaded object as the sandbox's child sends it.
type sandboxLoaded struct {
	diskLoaded
	Secret   *sandboxSecret `json:"secret,omitempty"`
	Key, Ref key            `json:",omitzero"`
}

// sandboxSecret is a Secret's data, which reconcile.SecretData's JSON
// leaves out.
type sandboxSecret struct {
	Type      string
	Data      map[string][]byte
	Immutable *bool
	Digests   map[string][]byte
}

// GobEncode sends the result as JSON, which keeps a pointer to a zero
// value: gob flattens pointers, and a CUE package's Deployment with
// replicas: 0 arrived with no replicas (one pod).
func (r cueResult) GobEncode() ([]byte, error) {
	w := struct {
		Loaded []sandboxLoaded
		Diags  []Diagnostic
	}{make([]sandboxLoaded, len(r.Loaded)), r.Diags}
	for i, lo := range r.Loaded {
		w.Loaded[i] = sandboxLoaded{diskLoaded: toDiskLoaded(lo), Key: lo.Key, Ref: lo.Ref}
		if s := lo.Obj.Secret; s != nil {
			w.Loaded[i].Secret = &sandboxSecret{s.Type, s.Data, s.Immutable, s.Digests}
		}
	}
	return stdjson.Marshal(w)
}

// GobDecode reads what GobEncode wrote.
func (r *cueResult) GobDecode(b []byte) error {
	var w struct {
		Loaded []sandboxLoaded
		Diags  []Diagnostic
	}
	if err := stdjson.Unmarshal(b, &w); err != nil {
		return err
	}
	r.Loaded, r.Diags = make([]loaded, len(w.Loaded)), w.Diags
	for i, sl := range w.Loaded {
		r.Loaded[i] = fromDiskLoaded(sl.diskLoaded)
		r.Loaded[i].Key, r.Loaded[i].Ref = sl.Key, sl.Ref
		if s := sl.Secret; s != nil {
			r.Loaded[i].Obj.Secret = &reconcile.SecretData{Type: s.Type, Data: s.Data, Immutable: s.Immutable, Digests: s.Digests}
		}
	}
	return nil
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

// readCUEMod reads the repository's cue.mod directory: module.cue and the
// .cue files of the packages kept in gen, pkg and usr (berth's schema in
// gen/berth.dev/k8s excepted). It returns them by path, and the module
// path without its major version.
func (l *loader) readCUEMod() (map[string][]byte, string) {
	files := map[string][]byte{}
	if fi, err := fs.Stat(l.fsys, "cue.mod"); err != nil || !fi.IsDir() {
		return files, ""
	}
	_ = fs.WalkDir(l.fsys, "cue.mod", func(p string, de fs.DirEntry, err error) error {
		switch {
		case err != nil:
			l.errorf(p, "cannot read: %v", pathErr(err))
			return nil
		case p == schemaDir:
			return fs.SkipDir
		case de.IsDir() || path.Ext(p) != ".cue":
			return nil
		}
		if data, ok := l.readPath(p); ok {
			files[p] = data
		}
		return nil
	})
	var mod string
	if data, ok := files["cue.mod/module.cue"]; ok {
		// A module file CUE refuses is reported when the package is loaded.
		if mf, err := modfile.ParseNonStrict(data, fileName("cue.mod/module.cue")); err == nil {
			mod, _, _ = strings.Cut(mf.Module, "@")
		}
	}
	return files, mod
}

// prepareCUE prepares one job per directory holding .cue files: the files
// the CUE loader may need for it and its cache key. What the loader reads
// is known before it runs, so that it can run in a child process and its
// result can be cached: the files of the directory and of those above it
// (CUE adds their files of the same package), the repository's packages it
// imports, and the files named by @embed, each read here within the size
// limit and without leaving the repository.
func (l *loader) prepareCUE() {
	if len(l.cueOrder) == 0 {
		return
	}
	mod, module := l.readCUEMod()
	p := &preparer{l: l, module: module, parsed: map[string]*prepared{}}
	for _, dir := range l.cueOrder {
		job := &cueJob{Dir: dir, Node: l.opts.Node, Strict: l.opts.Strict, MaxReplicas: l.opts.MaxReplicas, Files: maps.Clone(mod)}
		if !p.collect(job, dir, map[string]bool{}) {
			continue
		}
		h := l.newKeyHash("cue")
		writeField(h, dir)
		nodeKey(h, l.opts.Node)
		for _, name := range slices.Sorted(maps.Keys(job.Files)) {
			writeField(h, name)
			writeField(h, string(job.Files[name]))
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
	module string
	parsed map[string]*prepared
}

// prepared is a directory as far as preparing a job goes: the repository
// directories its files import and the files they embed.
type prepared struct {
	// failed tells that a file it embeds could not be read (and why was
	// reported): the package is not evaluated.
	failed  bool
	imports []string
	embeds  map[string][]byte
}

// collect adds to job the files of dir, of the directories above it and of
// every repository package they import. It reports false when a file they
// embed could not be read.
func (p *preparer) collect(job *cueJob, dir string, seen map[string]bool) bool {
	ok := true
	for d := dir; !seen[d]; d = path.Dir(d) {
		seen[d] = true
		pd := p.prepare(d)
		ok = ok && !pd.failed
		for _, f := range p.l.cueDirs[d] {
			job.Files[f.name] = f.data
		}
		maps.Copy(job.Files, pd.embeds)
		for _, imp := range pd.imports {
			ok = p.collect(job, imp, seen) && ok
		}
		if d == "." {
			break
		}
	}
	return ok
}

// prepare finds what the .cue files of dir import and embed. A file that
// does not parse is left to the CUE loader to report.
func (p *preparer) prepare(dir string) *prepared {
	if pd, ok := p.parsed[dir]; ok {
		return pd
	}
	l := p.l
	pd := &prepared{embeds: map[string][]byte{}}
	p.parsed[dir] = pd
	for _, file := range l.cueDirs[dir] {
		f, err := parser.ParseFile(fileName(file.name), file.data)
		if err != nil {
			continue
		}
		for spec := range f.ImportSpecs() {
			ip, _ := strconv.Unquote(spec.Path.Value)
			ip = ast.ParseImportPath(ip).Path
			if p.module == "" {
				continue
			}
			if d, ok := strings.CutPrefix(ip, p.module+"/"); ok {
				pd.imports = append(pd.imports, path.Clean(d))
			} else if ip == p.module {
				pd.imports = append(pd.imports, ".")
			}
		}
		embeds, _ := embed.EmbeddedPaths(file.name, f)
		for _, e := range embeds {
			names, err := e.FindAll(l.fsys)
			if !e.IsGlob() {
				// Read even a file that does not stat (a link out of the
				// repository), so that the reason is told.
				f, _, _ := e.Attribute.Lookup(0, "file")
				names, err = []string{path.Join(dir, f)}, nil
			}
			if err != nil {
				continue // the loader says what is wrong
			}
			for _, name := range names {
				if !fs.ValidPath(name) {
					continue // the loader refuses the path
				}
				data, ok := l.readPath(name)
				if !ok {
					pd.failed = true
					continue
				}
				pd.embeds[name] = data
			}
		}
	}
	return pd
}

// evalJob evaluates one CUE package and validates every object it declares.
func evalJob(job *cueJob) (res cueResult) {
	opts := Options{Node: job.Node, Strict: job.Strict, MaxReplicas: job.MaxReplicas}
	_ = opts.Validate()
	l := &loader{opts: opts, known: job.Known}
	defer func() {
		if r := recover(); r != nil {
			l.errorf(job.Dir, "internal error while evaluating this CUE package: %v", r)
		}
		res = cueResult{Loaded: l.loaded, Diags: l.diags}
	}()
	l.ensureCUE()
	inst, places := loadInstance(job)
	if inst == nil {
		return
	}
	if inst.Err != nil {
		for _, e := range cueerrors.Errors(inst.Err) {
			l.cueErrors(places.place(e), job.Dir)
		}
		return
	}
	v := l.ctx.BuildInstance(inst)
	if err := v.Validate(); err != nil {
		l.cueErrors(err, job.Dir)
		return
	}
	l.findObjects(v, 0)
	return
}

// overlayRoot is where the CUE loader sees the repository. It reads only
// the overlay berth gives it: nothing can exist under /proc/self/ by that
// name, so no file of the host is read.
const overlayRoot = "/proc/self/berth-repository"

// loadInstance loads the package of job.Dir with cue/load, from job.Files
// and berth's schema only, with the node's tags and tag variables. It
// returns nil when @if excludes every file of the directory, and where the
// package's attributes are.
func loadInstance(job *cueJob) (*build.Instance, *attrPlaces) {
	overlay := map[string]load.Source{}
	for name, data := range job.Files {
		overlay[path.Join(overlayRoot, name)] = load.FromBytes(data)
	}
	if _, ok := job.Files["cue.mod/module.cue"]; !ok {
		overlay[path.Join(overlayRoot, "cue.mod/module.cue")] = load.FromString(fmt.Sprintf("module: %q\nlanguage: version: %q\n", modulePath, languageVersion))
	}
	for name, data := range SchemaFiles() {
		overlay[path.Join(overlayRoot, schemaDir, path.Base(name))] = load.FromBytes(data)
	}
	tags, places := nodeTags(job.Files, job.Node)
	for {
		cfg := &load.Config{
			Dir:       overlayRoot,
			Overlay:   overlay,
			Tags:      tags,
			TagVars:   nodeTagVars(job.Node),
			Registry:  noRegistry{},
			ParseFile: parseForPositions,
			Env:       []string{},
		}
		inst := load.Instances([]string{"./" + job.Dir}, cfg)[0]
		var nf *load.NoFilesError
		if errors.As(inst.Err, &nf) {
			return nil, nil
		}
		// A tag that only files @if excludes declare (or an @if
		// never looked at) is unknown to CUE: load again without it.
		if t := unusedTag(inst.Err); t != "" {
			if i := slices.IndexFunc(tags, func(s string) bool { return s == t || strings.HasPrefix(s, t+"=") }); i >= 0 {
				tags = slices.Delete(tags, i, i+1)
				continue
			}
		}
		return inst, places
	}
}

// parseForPositions parses a file for the CUE loader under the name used
// in positions: "./apps/web.cue", or a name under schemaFilePrefix for
// berth's schema.
func parseForPositions(name string, src any, cfg parser.Config) (*ast.File, error) {
	return parser.ParseFile(positionName(name), src, cfg)
}

// positionName turns a path of the loader into the file name of
// positions.
func positionName(p string) string {
	p = strings.TrimPrefix(strings.TrimPrefix(p, overlayRoot), "/")
	if rest, ok := strings.CutPrefix(p, schemaDir+"/"); ok {
		return schemaFilePrefix + "k8s/" + rest
	}
	return fileName(p)
}

// unusedTag returns the tag of a "no tag for" or "not used in any file"
// error of cue/load, or "".
func unusedTag(err error) string {
	for _, e := range cueerrors.Errors(err) {
		format, args := e.Msg()
		if (format == "no tag for %q" || format == "tag %q not used in any file") && len(args) == 1 {
			s, _ := args[0].(string)
			return s
		}
	}
	return ""
}

// nodeTags returns the tags berth sets for node, as `cue -t` would: "node"
// is the node's name, "KEY=VALUE" is passed for each label KEY a @tag(KEY)
// of the files reads, and a bare "KEY" for each label an @if tests whose
// value is not "false". Tags no file declares are not passed (cue refuses
// them); label keys that are not CUE identifiers cannot be tags. It also
// returns where the attributes are.
func nodeTags(files map[string][]byte, node reconcile.Node) ([]string, *attrPlaces) {
	values := maps.Clone(node.Labels)
	if values == nil {
		values = map[string]string{}
	}
	if node.Name != "" {
		values["node"] = node.Name
	}
	places := &attrPlaces{tags: map[string]token.Pos{}, vars: map[string]token.Pos{}}
	valued, bare := places.tags, map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if path.Ext(name) != ".cue" || strings.HasPrefix(name, "cue.mod/") {
			continue
		}
		f, err := parser.ParseFile(fileName(name), files[name])
		if err != nil {
			continue
		}
		for _, d := range f.Preamble() {
			if a, ok := d.(*ast.Attribute); ok {
				if k, body := a.Split(); k == "if" {
					if e, err := parser.ParseExpr("@if", body); err == nil {
						if !places.badIf.IsValid() && !buildExpr(e) {
							places.badIf = a.Pos()
						}
						ast.Walk(e, func(n ast.Node) bool {
							if id, ok := n.(*ast.Ident); ok {
								bare[id.Name] = true
							}
							return true
						}, nil)
					}
				}
			}
		}
		ast.Walk(f, func(n ast.Node) bool {
			if fd, ok := n.(*ast.Field); ok {
				for _, a := range fd.Attrs {
					if k, body := a.Split(); k == "tag" {
						args := strings.Split(body, ",")
						for i, arg := range args {
							arg = strings.TrimSpace(arg)
							m := valued
							if v, ok := strings.CutPrefix(arg, "var="); ok {
								m, arg = places.vars, v
							} else if i > 0 {
								continue
							}
							if _, seen := m[arg]; !seen {
								m[arg] = a.Pos()
							}
						}
					}
				}
			}
			return true
		}, nil)
	}
	var tags []string
	for _, k := range slices.Sorted(maps.Keys(values)) {
		if !ast.IsValidIdent(k) {
			continue
		}
		if _, ok := valued[k]; ok {
			tags = append(tags, k+"="+values[k])
		}
		if bare[k] && k != "node" && values[k] != "false" {
			tags = append(tags, k)
		}
	}
	return tags, places
}

// attrPlaces are where a package's attributes are, to place the errors
// cue/load reports without a position.
type attrPlaces struct {
	// tags and vars are the first @tag of each tag and tag variable.
	tags, vars map[string]token.Pos
	// badIf is the first @if that is not a build expression.
	badIf token.Pos
}

// place gives e the position of the attribute it is about when it has
// none.
func (p *attrPlaces) place(e cueerrors.Error) cueerrors.Error {
	format, args := e.Msg()
	if e.Position().IsValid() || p == nil || len(args) == 0 {
		return e
	}
	name, _ := args[len(args)-1].(string)
	switch {
	case strings.HasSuffix(format, "injection tag %q"):
		return cueerrors.Wrap(cueerrors.Newf(p.tags[name], "@tag(%s): node value refused", name), e)
	case format == "tag variable '%s' not found":
		return cueerrors.Newf(p.vars[name], format, args...)
	case strings.HasSuffix(format, "in build attribute"):
		return cueerrors.Newf(p.badIf, format, args...)
	}
	return e
}

// buildExpr reports whether e is what @if accepts: names combined with !,
// && and || in parentheses.
func buildExpr(e ast.Expr) bool {
	switch e := e.(type) {
	case *ast.Ident:
		return true
	case *ast.ParenExpr:
		return buildExpr(e.X)
	case *ast.UnaryExpr:
		return e.Op == token.NOT && buildExpr(e.X)
	case *ast.BinaryExpr:
		return (e.Op == token.LAND || e.Op == token.LOR) && buildExpr(e.X) && buildExpr(e.Y)
	}
	return false
}

// nodeTagVars are the tag variables (`@tag(x,var=arch)`) berth provides:
// os, arch and hostname from the node's kubernetes.io labels. The others
// of `cue -T` (now, rand, cwd, username) would differ from run to run and
// are not provided.
func nodeTagVars(node reconcile.Node) map[string]load.TagVar {
	label := func(k string) load.TagVar {
		return load.TagVar{Func: func() (ast.Expr, error) {
			if v, ok := node.Labels[k]; ok {
				return ast.NewString(v), nil
			}
			return nil, nil
		}}
	}
	return map[string]load.TagVar{
		"os":       label(reconcile.LabelOS),
		"arch":     label(reconcile.LabelArch),
		"hostname": label(reconcile.LabelHostname),
	}
}

// noRegistry is the module registry of berth's CUE loader: berth never
// downloads CUE modules.
type noRegistry struct{}

var errNoRegistry = errors.New("berth does not download CUE modules: keep the packages in the repository (cue.mod/pkg, cue.mod/usr or the module itself)")

func (noRegistry) ModFile(context.Context, module.Version) (*modfile.File, error) {
	return nil, errNoRegistry
}

func (noRegistry) Fetch(context.Context, module.Version) (module.SourceLoc, error) {
	return module.SourceLoc{}, errNoRegistry
}

func (noRegistry) ModuleVersions(context.Context, string) ([]string, error) {
	return nil, errNoRegistry
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

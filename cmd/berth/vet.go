package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"berth.dev/berth/fleet/rollout"
	"berth.dev/berth/preview"
	"berth.dev/berth/reconcile"
	"berth.dev/berth/schema"
	"berth.dev/berth/source"
)

// sandboxEnv, set in the environment of a berth process, makes it serve
// as the child that evaluates CUE (see schema.Sandbox).
const sandboxEnv = "BERTH_CUE_SANDBOX"

// sandboxed is set by main: this process is the berth binary and can start
// itself as the CUE sandbox. Commands run in-process by tests evaluate CUE
// in process.
var sandboxed bool

// serveSandbox runs the sandbox child when this process was started as
// one; it reports whether it did.
func serveSandbox() (int, bool) {
	if os.Getenv(sandboxEnv) != "1" {
		return 0, false
	}
	return schema.ServeSandbox(os.Stdin, os.Stdout), true
}

// loaderCache keeps validation results for the life of the process: an
// agent validates only what each new commit changed, and nothing for a
// commit it has seen last.
var loaderCache = schema.NewCache()

// keptValidation reads into loaderCache the validation results the last
// apply or plan kept under the state directory, and returns a function
// that keeps this command's: an unchanged file is not validated again
// (schema.Cache.ReadFile says what is kept and what is not). A cache
// that cannot be read or written only costs the time it would save.
func (c *cli) keptValidation() (keep func()) {
	path := filepath.Join(c.stateDir, "cache", "validation")
	if err := loaderCache.ReadFile(path); err != nil {
		c.log.Debug("validation cache not read", "error", err)
	}
	return func() {
		if err := loaderCache.WriteFile(path); err != nil {
			c.log.Debug("validation cache not written", "error", err)
		}
	}
}

// schemaOptions are the loader's options for this invocation: the node (its
// name and labels feed CUE tags and @if), strict mode, the process's cache,
// and the CUE sandbox when berth runs as its own binary.
func (c *cli) schemaOptions() schema.Options {
	opts := schema.Options{Node: c.node(), Strict: c.strict, Cache: loaderCache, Decrypt: c.decrypt,
		MaxReplicas: int32(c.maxReplicas), MaxPods: max(c.maxPods, 0)}
	if sb := cueSandbox(); sandboxed && sb != nil {
		opts.Sandbox = sb
	}
	return opts
}

// cueSandbox is the process's CUE sandbox: berth itself, started again,
// kept between loads.
var cueSandbox = sync.OnceValue(func() *schema.Sandbox {
	exe, err := os.Executable()
	if err != nil {
		return nil
	}
	sb := &schema.Sandbox{Command: []string{exe}, Env: []string{sandboxEnv + "=1"}}
	sb.Timeout, sb.MemoryLimit = sandboxBounds()
	return sb
})

// sandboxBounds reads the CUE sandbox's bounds from BERTH_CUE_TIMEOUT (a
// duration such as 5s) and BERTH_CUE_MEMORY (MiB); zero means the
// defaults, 10 s and 512 MiB.
func sandboxBounds() (time.Duration, int64) {
	d, _ := time.ParseDuration(os.Getenv("BERTH_CUE_TIMEOUT"))
	mib, _ := strconv.ParseInt(os.Getenv("BERTH_CUE_MEMORY"), 10, 64)
	return max(d, 0), max(mib, 0) << 20
}

// int32Flag is a positive int32 flag; zero means the default.
type int32Flag int32

func (f *int32Flag) String() string { return strconv.Itoa(int(*f)) }

func (f *int32Flag) Set(s string) error {
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil || n <= 0 {
		return fmt.Errorf("want a whole number from 1 to %d", math.MaxInt32)
	}
	*f = int32Flag(n)
	return nil
}

func vetFlags(fs *flag.FlagSet, c *cli) {
	fs.StringVar(&c.output, "o", "text", "output format: text, json or github (workflow annotations)")
	fs.BoolVar(&c.strict, "strict", false, "fail on warnings, such as objects of kinds berth does not run")
}

// labelsFileFlag reads node labels from a file when it is set: one label a
// line as key=value or key: value; blank lines and lines starting with '#'
// are skipped. Labels given later on the command line win.
type labelsFileFlag struct {
	labels *labelsFlag
	path   string
}

func (f *labelsFileFlag) String() string { return f.path }

func (f *labelsFileFlag) Set(p string) error {
	data, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	labels, err := parseLabelsFile(data)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if *f.labels == nil {
		*f.labels = labelsFlag{}
	}
	for k, v := range labels {
		(*f.labels)[k] = v
	}
	f.path = p
	return nil
}

// parseLabelsFile parses a node labels file.
func parseLabelsFile(data []byte) (map[string]string, error) {
	labels := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.IndexAny(line, "=:")
		if i <= 0 {
			return nil, fmt.Errorf("line %d: want key=value", n)
		}
		k, v := strings.TrimSpace(line[:i]), strings.TrimSpace(line[i+1:])
		labels[k] = strings.Trim(v, `"'`)
	}
	return labels, sc.Err()
}

// loadContext is schema.Load that returns when ctx ends (SIGTERM, Ctrl-C)
// without waiting for a long validation: the load goes on in the
// background, and the process, exiting, ends it and its CUE child.
func loadContext(ctx context.Context, fsys fs.FS, opts schema.Options) (*schema.Result, error) {
	type result struct {
		res *schema.Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := schema.Load(fsys, opts)
		done <- result{res, err}
	}()
	select {
	case r := <-done:
		return r.res, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func runVet(ctx context.Context, c *cli, args []string) error {
	switch c.output {
	case "text", "json", "github":
	default:
		return fmt.Errorf("-o %q: want text, json or github", c.output)
	}
	dir := "."
	switch len(args) {
	case 0:
	case 1:
		dir = args[0]
	default:
		return fmt.Errorf("vet takes one directory, got %q", args)
	}
	src, err := source.Open(source.Options{URL: dir, Logger: c.log.Named("source"), ForceDir: true})
	if err != nil {
		return err
	}
	opts := c.schemaOptions()
	var diags []schema.Diagnostic
	var skipped []reconcile.NotForNode
	objects := 0
	rev, _, err := src.Fetch(ctx)
	var cerr *source.ContentError
	switch {
	case errors.As(err, &cerr):
		// A bound of the repository (size, files, depth, a symbolic
		// link): a problem of the revision like any other, reported in
		// every output format.
		diags = []schema.Diagnostic{{Pos: reconcile.Position{File: cerr.Path}, Message: cerr.Err.Error()}}
	case err != nil:
		return err
	default:
		res, err := loadContext(ctx, rev.Files, opts)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var lerr *schema.Error
		switch {
		case errors.As(err, &lerr):
			diags = lerr.Diagnostics
		case err != nil:
			return err
		default:
			diags = res.Warnings
			objects = len(res.Objects)
			skipped = reconcile.NotForNodes(res.Objects, opts.Node)
		}
		diags = append(diags, rolloutDiagnostics(rev.Files)...)
	}
	errs, warns := 0, 0
	for _, d := range diags {
		if d.Severity == schema.SeverityError {
			errs++
		} else {
			warns++
		}
	}
	failed := errs > 0 || (c.strict && warns > 0)
	switch c.output {
	case "json":
		writeVetJSON(c.stdout, !failed, objects, diags, skipped)
	case "github":
		writeVetGitHub(c.stdout, dir, diags)
	default:
		for _, d := range diags {
			fmt.Fprintln(c.stdout, d.String())
		}
		preview.WriteTextNotForNode(c.stdout, skipped, preview.Painter(false))
	}
	if c.output != "json" {
		switch {
		case failed:
			fmt.Fprintf(c.stderr, "%s: %s, %s\n", dir, count(errs, "error"), count(warns, "warning"))
		case warns > 0:
			fmt.Fprintf(c.stderr, "%s: %s, valid with %s\n", dir, count(objects, "object"), count(warns, "warning"))
		default:
			fmt.Fprintf(c.stdout, "%s: %s, valid\n", dir, count(objects, "object"))
		}
	}
	if failed {
		return errReported
	}
	return nil
}

func count(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// vetReport is what `berth vet -o json` prints.
type vetReport struct {
	Valid       bool            `json:"valid"`
	Objects     int             `json:"objects"`
	Diagnostics []vetDiagnostic `json:"diagnostics"`
	// NotForNode lists the objects whose pods do not run on this node,
	// and why.
	NotForNode []reconcile.NotForNode `json:"notForNode,omitempty"`
}

// vetDiagnostic is a diagnostic in JSON, its severity as a word.
type vetDiagnostic struct {
	File     string `json:"file"`
	Line     int    `json:"line,omitempty"`
	Column   int    `json:"column,omitempty"`
	Object   string `json:"object,omitempty"`
	Path     string `json:"path,omitempty"`
	Message  string `json:"message"`
	Severity string `json:"severity"`
}

func writeVetJSON(w io.Writer, valid bool, objects int, diags []schema.Diagnostic, skipped []reconcile.NotForNode) {
	out := vetReport{Valid: valid, Objects: objects, Diagnostics: []vetDiagnostic{}, NotForNode: skipped}
	for _, d := range diags {
		out.Diagnostics = append(out.Diagnostics, vetDiagnostic{
			File: d.Pos.File, Line: d.Pos.Line, Column: d.Pos.Column,
			Object: d.Object, Path: d.Path, Message: d.Message, Severity: d.Severity.String(),
		})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	_ = enc.Encode(out)
}

// writeVetGitHub prints diagnostics as GitHub Actions workflow commands,
// which the Actions runner turns into annotations on the pull request:
//
//	::error file=apps/web.yaml,line=12,col=5,title=Pod/default/web::spec.containers.0.image: required field is missing
//
// File paths are relative to the working directory (dir joined with the
// diagnostic's path), as the runner expects.
func writeVetGitHub(w io.Writer, dir string, diags []schema.Diagnostic) {
	for _, d := range diags {
		props := []string{"file=" + ghProperty(filepath.ToSlash(filepath.Join(dir, strings.TrimPrefix(d.Pos.File, "./"))))}
		if d.Pos.Line > 0 {
			props = append(props, fmt.Sprintf("line=%d", d.Pos.Line))
			if d.Pos.Column > 0 {
				props = append(props, fmt.Sprintf("col=%d", d.Pos.Column))
			}
		}
		if d.Object != "" {
			props = append(props, "title="+ghProperty(d.Object))
		}
		msg := d.Message
		if d.Path != "" {
			msg = d.Path + ": " + msg
		}
		level := "error"
		if d.Severity == schema.SeverityWarning {
			level = "warning"
		}
		fmt.Fprintf(w, "::%s %s::%s\n", level, strings.Join(props, ","), ghData(msg))
	}
}

// ghData escapes a workflow command's message.
func ghData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

// ghProperty escapes a workflow command's property value.
func ghProperty(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}

// rolloutDiagnostics checks the rollout policy at the root of fsys, if
// there is one, and returns its problems as errors.
func rolloutDiagnostics(fsys fs.FS) []schema.Diagnostic {
	_, err := rollout.Load(fsys)
	var perr *rollout.Error
	if !errors.As(err, &perr) {
		return nil
	}
	out := make([]schema.Diagnostic, len(perr.Problems))
	for i, p := range perr.Problems {
		out[i] = schema.Diagnostic{Pos: p.Pos, Path: p.Path, Message: p.Message, Severity: schema.SeverityError}
	}
	return out
}

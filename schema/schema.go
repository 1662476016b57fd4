package schema

import (
	"embed"
	"fmt"
	"io/fs"
	"path"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/build"
	"cuelang.org/go/cue/parser"
)

// The CUE schema, package k8s, one file per area. Definitions are named after
// the kind they validate (#Pod for kind Pod).
//
//go:embed k8s/*.cue
var schemaFS embed.FS

// schemaFilePrefix starts the file name of every schema position, so a
// schema position is never mistaken for a place in the user's repository.
const schemaFilePrefix = "berth:schema/"

// SchemaFiles returns the embedded CUE schema files (package k8s), keyed by
// their path such as "k8s/pod.cue", for documentation and tooling.
func SchemaFiles() map[string][]byte {
	files := map[string][]byte{}
	names, _ := fs.Glob(schemaFS, "k8s/*.cue")
	for _, n := range names {
		b, _ := schemaFS.ReadFile(n)
		files[n] = b
	}
	return files
}

// compileSchema builds the embedded schema package in ctx.
func compileSchema(ctx *cue.Context) (cue.Value, error) {
	inst := build.NewContext().NewInstance("berth.dev/berth/schema/k8s", nil)
	names, err := fs.Glob(schemaFS, "k8s/*.cue")
	if err != nil {
		return cue.Value{}, err
	}
	for _, n := range names {
		src, err := schemaFS.ReadFile(n)
		if err != nil {
			return cue.Value{}, err
		}
		f, err := parser.ParseFile(schemaFilePrefix+n, src)
		if err != nil {
			return cue.Value{}, fmt.Errorf("parse embedded schema %s: %w", path.Base(n), err)
		}
		if err := inst.AddSyntax(f); err != nil {
			return cue.Value{}, fmt.Errorf("add embedded schema %s: %w", path.Base(n), err)
		}
	}
	v := ctx.BuildInstance(inst)
	if err := v.Validate(); err != nil {
		return cue.Value{}, fmt.Errorf("build embedded schema: %w", err)
	}
	return v, nil
}

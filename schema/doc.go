// Package schema turns a repository snapshot into validated objects.
//
// Load walks the snapshot (an fs.FS rooted at the repository) and reads:
//
//   - *.yaml and *.yml files: YAML streams, one object per document ("---"
//     separates documents; empty documents are skipped). KYAML, the
//     flow-style subset of YAML that kubectl writes, is YAML and needs
//     nothing special.
//   - *.json files: one object each.
//   - *.cue files: the .cue files of one directory form one CUE package
//     (CUE's own rule; they must share the package name). Every struct
//     reachable through regular fields and list elements that has concrete
//     string fields apiVersion and kind is an object; other values,
//     definitions and hidden fields are helpers. A package may import only
//     the CUE standard library.
//
// Hidden files and directories (a name starting with '.', such as .git) and
// CUE's module directory cue.mod are not read.
//
// Each object is validated on its own against the embedded CUE schema for its
// kind (package k8s, #Pod for kind Pod), so the cost grows linearly with the
// number of objects. The schema's structs are closed: a field berth does not
// support is rejected by name, never ignored. Rules that relate fields to each
// other (unique container names, mounts naming declared volumes, one source
// per volume) are checked in Go after the schema, where the message can name
// both places. Valid objects are decoded into reconcile.Object with Source
// and the kind's spec filled in and metadata.namespace defaulted to
// "default".
//
// Every problem of the revision is reported, not only the first, as a
// Diagnostic: a position in the user's file (never in the schema), relative
// to the repository root with a leading "./", the object as
// "Kind/namespace/name", the field path and a sentence:
//
//	./apps/web.yaml:12:5: Pod/default/web: spec.containers.0.image: required field is missing
//
// Invariants kept here:
//
//   - All or nothing: if any diagnostic is an error, Load returns no objects,
//     only an *Error listing every diagnostic in file order.
//   - Deterministic: objects are sorted by file and position, diagnostics
//     too, whatever the order of the walk.
//   - Bounded input: files larger than Options.MaxFileSize (1 MiB) or holding
//     more than Options.MaxDocuments (1000) YAML documents are errors; YAML
//     alias expansion is bounded by the decoder; a panic while evaluating
//     one file becomes a diagnostic for that file.
//   - Nothing outside the repository is read: a symbolic link is followed
//     only when the fs.FS can read links (fs.ReadLinkFS) and its target,
//     resolved one link at a time, stays inside the repository and goes
//     through no linked directory. Links to directories are not followed;
//     their files are read where they are.
//
// The package does no I/O beyond reading the fs.FS it is given.
package schema

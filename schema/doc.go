// Package schema turns a repository snapshot into validated objects.
//
// Load walks the snapshot (an fs.FS rooted at the repository) and reads:
//
//   - *.yaml and *.yml files: YAML streams, one object per document ("---"
//     separates documents; empty documents are skipped). KYAML, the
//     flow-style subset of YAML that kubectl writes, is YAML and needs
//     nothing special.
//   - *.json files: one object each.
//   - *.cue files: each directory holding .cue files is loaded as a CUE
//     package by CUE's own loader (cuelang.org/go/cue/load), with the same
//     package's files of the directories above it. Every struct reachable
//     through regular fields and list elements that has concrete string
//     fields apiVersion and kind is an object; other values, definitions
//     and hidden fields are helpers. A package may import the CUE standard
//     library, berth's schema as "berth.dev/k8s" (ImportPath), the
//     packages of the repository's module (cue.mod/module.cue) and those
//     kept in cue.mod/{pkg,usr,gen}; no module is downloaded. Options.Node
//     is passed as `cue -t` tags (node=NAME, LABEL=VALUE for each @tag,
//     a bare LABEL for each @if) and as the tag variables os, arch and
//     hostname; @embed reads files of the repository (see docs/schema.md).
//
// Hidden files and directories (a name starting with '.', such as .git) are
// not read, nor is CUE's module directory cue.mod as manifests.
//
// Each object is validated on its own against the embedded CUE schema for its
// kind (package k8s, #Pod for kind Pod, #Deployment for Deployment, …), so the
// cost grows linearly with the number of objects; files and CUE packages are
// validated on every CPU. The schema's structs are closed: a field berth does
// not support is rejected by name, never ignored, and fields known to need a
// cluster carry the reason (reasons.go). Kinds berth does not run (Service,
// PersistentVolumeClaim, …) are warnings, errors with Options.Strict; removed
// apiVersions name the one to use. Rules that relate fields to each other
// (unique container names, mounts naming declared volumes, one source per
// volume, value or valueFrom, selectors matching their template) are checked
// in Go after the schema, where the message can name both places, as are
// the rules apply would otherwise meet first: cron schedules and time zones
// (reconcile.ParseSchedule), quantities and label selectors
// (k8s.io/apimachinery), resources berth cannot enforce. Rules across the
// objects of a revision run once every object is loaded: references to
// ConfigMaps and Secrets the revision lacks, and host ports bound twice on
// this node, each reported at the referring field. Valid
// objects are decoded into reconcile.Object with Source and the kind's spec
// filled in and metadata.namespace defaulted to "default"; a Secret's data is
// decoded from base64 with stringData merged in.
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
//     one file becomes a diagnostic for that file. A workload asking for
//     more than Options.MaxReplicas (1000) pods is an error at the field,
//     and so is a ConfigMap or Secret over 1 MiB. Work stays linear in the
//     input: a data map of a YAML or JSON document too large for CUE's
//     evaluator (quadratic in a struct's fields) is checked in Go.
//   - Nothing outside the repository is read: a symbolic link is followed
//     only when the fs.FS can read links (fs.ReadLinkFS) and its target,
//     resolved one link at a time, stays inside the repository and goes
//     through no linked directory. Links to directories are not followed;
//     their files are read where they are. Files named by @embed are read
//     the same way, before CUE runs; the CUE loader sees only the files
//     berth read, never the host's file system.
//   - Bounded CUE: with Options.Sandbox, CUE packages are evaluated in a
//     child process under a deadline and a memory bound; a package that
//     exceeds them or crashes the child is reported, the others still load.
//   - Secret values never appear in a diagnostic.
//   - Cached by content: with Options.Cache, unchanged files and packages
//     are not validated again, and the same revision is not validated at
//     all.
//
// The package does no I/O beyond reading the fs.FS it is given, except that
// a Sandbox starts its child process.
package schema

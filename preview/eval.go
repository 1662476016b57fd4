package preview

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/schema"
	"berth.dev/berth/secrets"
	"berth.dev/berth/source"
)

// Loaded is one revision loaded and validated, before it is expanded for a
// node.
type Loaded struct {
	// Commit is the revision's commit hash (or directory digest).
	Commit string
	// Objects are the validated objects; nil when the revision is invalid.
	Objects []reconcile.Object
	// Diagnostics are the revision's problems when it fails validation
	// (errors and warnings, in file order).
	Diagnostics []schema.Diagnostic
	// Warnings are problems of a valid revision that do not fail it.
	Warnings []schema.Diagnostic
	// Err is a failure that is not a validation problem (unreadable
	// files, bad options).
	Err error
}

// Invalid reports whether the revision failed validation.
func (l *Loaded) Invalid() bool { return len(l.Diagnostics) > 0 && l.Objects == nil }

// Load reads and validates files, the snapshot of commit, with schema.Load
// as apply does. CUE files see opts.Node as tags.
func Load(files fs.FS, commit string, opts schema.Options) *Loaded {
	l := &Loaded{Commit: commit}
	res, err := schema.Load(files, opts)
	var diags *schema.Error
	switch {
	case errors.As(err, &diags):
		l.Diagnostics = diags.Diagnostics
	case err != nil:
		l.Err = err
	default:
		l.Objects = res.Objects
		l.Warnings = res.Warnings
		if l.Objects == nil {
			l.Objects = []reconcile.Object{}
		}
	}
	return l
}

// Evaluation is a loaded revision expanded into the pods it wants on one
// node.
type Evaluation struct {
	*Loaded
	// Node is the node the revision was expanded for.
	Node reconcile.Node
	// Pods are the desired pods, sorted by ID.
	Pods []reconcile.DesiredPod
	// ExpandErr is why expansion failed, if it did.
	ExpandErr error
	// Refused holds, for each pod the node's policy refuses, why.
	Refused map[reconcile.PodID]string
	// NotForNode lists the objects whose pods do not run on Node, and why.
	NotForNode []reconcile.NotForNode
	// Waiting are the objects whose pods the node does not start: they
	// need Secrets it cannot decrypt.
	Waiting []secrets.Waiting
}

// Failed returns what kept the revision from being evaluated: nil, an
// error for unreadable or unexpandable input, or a *schema.Error holding
// its validation problems.
func (e *Evaluation) Failed() error {
	switch {
	case e.Err != nil:
		return e.Err
	case e.Invalid():
		return &schema.Error{Diagnostics: e.Diagnostics}
	case e.ExpandErr != nil:
		return e.ExpandErr
	}
	return nil
}

// ExpandOptions are the host-specific inputs of expansion besides the
// node.
type ExpandOptions struct {
	// StateDir is the agent's state directory (where StatefulSet volumes
	// live); "" means berth's default.
	StateDir string
	// Records are the host's Job and CronJob records (nil: none, as for a
	// revision that never ran).
	Records *reconcile.Records
	// Now is the time Job decisions are made at (zero: none is).
	Now time.Time
	// Policy is the node's policy; when set, the pods it refuses (which
	// apply would fail to create) are marked. Nil: not checked.
	Policy *reconcile.NodePolicy
	// Prepare, when set, readies the objects for the node first (Secrets
	// it cannot decrypt hold back the objects that need them).
	Prepare Preparer
}

// Expand expands l for node with reconcile.Expand, as the agent on that
// node would. An invalid revision expands to no pods.
func (l *Loaded) Expand(node reconcile.Node, opts ExpandOptions) *Evaluation {
	e := &Evaluation{Loaded: l, Node: node}
	if l.Err != nil || l.Invalid() {
		return e
	}
	objs := l.Objects
	if opts.Prepare != nil {
		var err error
		if objs, e.Waiting, err = opts.Prepare(objs); err != nil {
			e.ExpandErr = err
			return e
		}
	}
	pods, err := expand(objs, l.Commit, node, opts)
	if err != nil {
		e.ExpandErr = fmt.Errorf("revision %s: %w", source.ShortCommit(l.Commit), err)
		return e
	}
	e.Pods = pods
	e.NotForNode = reconcile.NotForNodes(l.Objects, node)
	e.Waiting = secrets.ForNode(e.Waiting, e.NotForNode)
	if opts.Policy != nil {
		for i := range pods {
			if err := reconcile.CheckPolicy(&pods[i].Spec, *opts.Policy); err != nil {
				if e.Refused == nil {
					e.Refused = map[reconcile.PodID]string{}
				}
				e.Refused[pods[i].ID] = strings.ReplaceAll(err.Error(), "\n", "; ")
			}
		}
	}
	return e
}

// Evaluate loads files for node (CUE files see its name and labels as
// tags) and expands them for node.
func Evaluate(files fs.FS, commit string, node reconcile.Node, sopts schema.Options, eopts ExpandOptions) *Evaluation {
	sopts.Node = node
	return Load(files, commit, sopts).Expand(node, eopts)
}

// expand is the one call of reconcile.Expand.
func expand(objs []reconcile.Object, commit string, node reconcile.Node, opts ExpandOptions) ([]reconcile.DesiredPod, error) {
	return reconcile.Expand(objs, commit, reconcile.ExpandOptions{Node: node, StateDir: opts.StateDir, Records: opts.Records, Now: opts.Now})
}

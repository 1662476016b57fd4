package reconcile

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// ApplyOptions tune Apply.
type ApplyOptions struct {
	// Workers is how many pods are created or removed at once (default 4).
	Workers int
	// Logger receives one line per change (default: discard).
	Logger hclog.Logger
}

// Result is what happened to one change of a plan.
type Result struct {
	Change
	Err      error         `json:"-"`
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration"`
}

// ApplyResult lists the results of applying a plan, in plan order.
type ApplyResult struct {
	Results []Result `json:"results"`
}

// Err joins the errors of all failed changes, or returns nil.
func (r *ApplyResult) Err() error {
	var errs []error
	for _, res := range r.Results {
		if res.Err != nil {
			errs = append(errs, fmt.Errorf("%s pod %s: %w", res.Action, res.Pod, res.Err))
		}
	}
	return errors.Join(errs...)
}

// Apply carries out plan against rt: deletions first, then replacements
// (the old pod is removed before the new one starts, as for a Kubernetes
// pod of the same name), then creations. Pods are handled in parallel, up
// to Workers at a time; a failure of one pod does not stop the others.
// Kept pods are not touched.
func Apply(ctx context.Context, rt Runtime, plan *Plan, opts ApplyOptions) *ApplyResult {
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	log := opts.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	res := &ApplyResult{Results: make([]Result, len(plan.Changes))}
	for i, c := range plan.Changes {
		res.Results[i].Change = c
	}
	for _, phase := range []Action{ActionDelete, ActionReplace, ActionCreate} {
		var wg sync.WaitGroup
		sem := make(chan struct{}, opts.Workers)
		for i := range res.Results {
			r := &res.Results[i]
			if r.Action != phase {
				continue
			}
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				start := time.Now()
				r.Err = applyChange(ctx, rt, r.Change)
				r.Duration = time.Since(start)
				l := log.With("pod", r.Pod.String(), "action", string(r.Action), "reason", r.Reason,
					"duration", r.Duration.Round(time.Millisecond))
				if r.Err != nil {
					r.Error = r.Err.Error()
					l.Error("change failed", "error", r.Err)
				} else {
					l.Info("change applied")
				}
			}()
		}
		wg.Wait()
	}
	return res
}

func applyChange(ctx context.Context, rt Runtime, c Change) error {
	switch c.Action {
	case ActionDelete:
		return rt.RemovePod(ctx, c.Pod, c.Observed.GracePeriod)
	case ActionReplace:
		grace := c.Desired.GracePeriod()
		if c.Observed != nil {
			grace = c.Observed.GracePeriod
		}
		// Images first: the old pod keeps running while they are pulled,
		// and stays when one cannot be had.
		if err := ensureImages(ctx, rt, c.Desired); err != nil {
			return err
		}
		if err := rt.RemovePod(ctx, c.Pod, grace); err != nil {
			return fmt.Errorf("remove old pod: %w", err)
		}
		return StartPod(ctx, rt, c.Desired)
	case ActionCreate:
		return StartPod(ctx, rt, c.Desired)
	}
	return nil
}

// StartPod brings up a pod the way a kubelet does: images first, then the
// sandbox, then each init container in order, each to successful
// completion, then the app containers.
func StartPod(ctx context.Context, rt Runtime, p *DesiredPod) error {
	if err := ensureImages(ctx, rt, p); err != nil {
		return err
	}
	if err := rt.CreateSandbox(ctx, p); err != nil {
		return fmt.Errorf("create sandbox: %w", err)
	}
	for _, c := range p.Spec.InitContainers {
		if err := rt.StartContainer(ctx, p, InitContainer, c.Name); err != nil {
			return fmt.Errorf("start init container %q: %w", c.Name, err)
		}
		code, err := rt.WaitContainer(ctx, p.ID, InitContainer, c.Name)
		if err != nil {
			return fmt.Errorf("wait for init container %q: %w", c.Name, err)
		}
		if code != 0 {
			return fmt.Errorf("init container %q exited with code %d", c.Name, code)
		}
	}
	for _, c := range p.Spec.Containers {
		if err := rt.StartContainer(ctx, p, AppContainer, c.Name); err != nil {
			return fmt.Errorf("start container %q: %w", c.Name, err)
		}
	}
	return nil
}

// ensureImages makes every image of p available, each image once.
func ensureImages(ctx context.Context, rt Runtime, p *DesiredPod) error {
	for _, c := range podImages(p) {
		if err := EnsurePodImage(ctx, rt, p, c.Image, c.ImagePullPolicy); err != nil {
			return fmt.Errorf("image for container %q: %w", c.Name, err)
		}
	}
	return nil
}

// podImages returns, for each image and pull policy the pod uses, the
// first container (init containers first) that uses it.
func podImages(p *DesiredPod) []Container {
	var out []Container
	seen := map[string]bool{}
	for _, c := range append(append([]Container(nil), p.Spec.InitContainers...), p.Spec.Containers...) {
		key := c.Image + "\x00" + c.ImagePullPolicy
		if !seen[key] {
			seen[key] = true
			out = append(out, c)
		}
	}
	return out
}

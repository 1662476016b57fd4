package reconcile

import (
	"errors"
	"fmt"
)

// AdmitPods asks rt, when it is an Admitter, about every pod of pods that
// does not already run with its spec; it returns every refusal, each
// naming the pod and where it is declared.
func AdmitPods(rt any, revision string, pods []DesiredPod, observed []ObservedPod) error {
	a, ok := rt.(Admitter)
	if !ok {
		return nil
	}
	running := make(map[PodID]string, len(observed))
	for _, o := range observed {
		running[o.ID] = o.Hash
	}
	var errs []error
	for i := range pods {
		p := &pods[i]
		if p.Finished != "" || running[p.ID] == p.Hash {
			continue
		}
		if err := a.Admit(p); err != nil {
			errs = append(errs, fmt.Errorf("%s: pod %s: %w", p.Source, p.ID, err))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return &AdmissionError{Revision: revision, Err: errors.Join(errs...)}
}

// AdmissionError is a revision refused because this host will not run
// some of its pods.
type AdmissionError struct {
	Revision string
	Err      error
}

func (e *AdmissionError) Error() string {
	return fmt.Sprintf("revision %s cannot run on this host; nothing was changed:\n%v", ShortRevision(e.Revision), e.Err)
}

func (e *AdmissionError) Unwrap() error { return e.Err }

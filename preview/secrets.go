package preview

import (
	"bytes"
	"fmt"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/secrets"
)

// Preparer readies a loaded revision for one device before expansion
// (secrets.Keyring.Prepare): it takes out the Secrets the device cannot
// decrypt and the objects that need them, which it returns as waiting.
type Preparer func([]reconcile.Object) ([]reconcile.Object, []secrets.Waiting, error)

// waitingReason says why a pod of owner is not started, when owner waits
// for Secrets; "" otherwise.
func (e *Evaluation) waitingReason(owner string) string {
	for _, w := range e.Waiting {
		if w.Object == owner {
			return fmt.Sprintf("waits for %s, not encrypted to this device", secretNames(w.Secrets))
		}
	}
	return ""
}

func secretNames(names []string) string {
	s := "Secret"
	if len(names) > 1 {
		s += "s"
	}
	for i, n := range names {
		if i > 0 {
			s += ","
		}
		s += " " + n
	}
	return s
}

// writeTextWaiting prints the objects not started for want of Secrets.
func writeTextWaiting(ew *errWriter, paint Painter, waiting []secrets.Waiting) {
	if len(waiting) == 0 {
		return
	}
	ew.printf("%s\n", paint.Paint(ansiYellow, fmt.Sprintf("not started on this device (%d): Secrets not encrypted to its age key", len(waiting))))
	for _, w := range waiting {
		ew.printf("  %s (%s): waits for %s\n", w.Object, w.Source, secretNames(w.Secrets))
	}
}

// markdownWaiting writes the objects not started for want of Secrets.
func markdownWaiting(b *bytes.Buffer, waiting []secrets.Waiting) {
	if len(waiting) == 0 {
		return
	}
	fmt.Fprintf(b, "**Not started on this device** (Secrets not encrypted to its age key):\n\n")
	for _, w := range waiting {
		fmt.Fprintf(b, "- `%s` waits for %s\n", w.Object, secretNames(w.Secrets))
	}
	b.WriteString("\n")
}

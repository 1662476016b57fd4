package agent

import (
	"fmt"
	"time"

	"berth.dev/berth/internal/record"
)

// Names of the agent's records under the state directory. The last applied
// revision shares record.LastApplied with "berth apply".
const (
	RecordLastFetched = "last-fetched.json"
	RecordLastGood    = "last-good.json"
	RecordBad         = "bad-revisions.json"
	RecordControl     = "agent-control.json"
)

// BadRevision is a revision the agent rolled back from or refused for
// good. It is not tried again until a different commit arrives.
type BadRevision struct {
	Commit string    `json:"commit"`
	Reason string    `json:"reason"`
	Time   time.Time `json:"time"`
}

// Control is what the operator set with berth suspend/resume and
// berth pin/unpin. It is persisted, so it survives restarts.
type Control struct {
	// Suspended stops the agent from changing anything on the host.
	Suspended bool `json:"suspended,omitempty"`
	// Pin is a commit (or ref) the agent applies instead of the fetched
	// head.
	Pin  string    `json:"pin,omitempty"`
	Time time.Time `json:"time,omitzero"`
}

// ReadControl reads the control record of stateDir (zero when absent).
func ReadControl(stateDir string) (Control, error) {
	var c Control
	if _, err := record.Read(stateDir, RecordControl, &c); err != nil {
		return Control{}, fmt.Errorf("read control record: %w", err)
	}
	return c, nil
}

// WriteControl replaces the control record of stateDir atomically.
func WriteControl(stateDir string, c Control) error {
	c.Time = time.Now().UTC()
	if err := record.Write(stateDir, RecordControl, c); err != nil {
		return fmt.Errorf("write control record: %w", err)
	}
	return nil
}

// ReadBad returns the bad revisions recorded in stateDir.
func ReadBad(stateDir string) ([]BadRevision, error) {
	var bad []BadRevision
	if _, err := record.Read(stateDir, RecordBad, &bad); err != nil {
		return nil, fmt.Errorf("read bad revisions: %w", err)
	}
	return bad, nil
}

// maxBad bounds the bad-revision record; the oldest entries go first.
const maxBad = 50

func writeBad(stateDir string, bad []BadRevision) error {
	if len(bad) > maxBad {
		bad = bad[len(bad)-maxBad:]
	}
	if bad == nil {
		bad = []BadRevision{}
	}
	return record.Write(stateDir, RecordBad, bad)
}

func readRevision(stateDir, name string) (*record.Revision, error) {
	var r record.Revision
	ok, err := record.Read(stateDir, name, &r)
	if err != nil || !ok {
		return nil, err
	}
	return &r, nil
}

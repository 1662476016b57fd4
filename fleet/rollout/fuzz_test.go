package rollout

import (
	"errors"
	"testing"
)

// FuzzParse checks that Parse never panics, and that every problem it
// reports has a position in the file.
func FuzzParse(f *testing.F) {
	f.Add([]byte(example))
	f.Add([]byte(twoWaves))
	f.Add([]byte("waves: [{name: a, percent: 5}]\ndownloadWindow: {schedule: \"@daily\", duration: 1h}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("./berth-rollout.yaml", data)
		var perr *Error
		switch {
		case err == nil && (p == nil || len(p.Waves) == 0):
			t.Fatalf("valid policy without waves: %+v", p)
		case err != nil && !errors.As(err, &perr):
			t.Fatalf("error of type %T: %v", err, err)
		case err != nil:
			for _, pr := range perr.Problems {
				if pr.Pos.File == "" || pr.Pos.Line == 0 {
					t.Fatalf("problem without a position: %s", pr)
				}
			}
		}
	})
}

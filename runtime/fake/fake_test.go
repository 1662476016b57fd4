package fake_test

import (
	"sync"
	"testing"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/runtime/fake"
	"berth.dev/berth/runtime/runtimetest"
)

const image = "example.local/busybox:1"

// TestContract holds the fake to the behaviour the real runtime has.
func TestContract(t *testing.T) {
	var mu sync.Mutex
	byTest := map[*testing.T]*fake.Runtime{}
	runtimetest.Run(t, func(t *testing.T) (reconcile.Runtime, string) {
		mu.Lock()
		defer mu.Unlock()
		// A second call for the same test is an agent restarted on the same
		// host: it sees the same record.
		rt, ok := byTest[t]
		if !ok {
			rt = fake.New(image)
			byTest[t] = rt
		}
		return rt, image
	})
}

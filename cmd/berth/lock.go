package main

import (
	"context"
	"fmt"

	"berth.dev/berth/internal/statelock"
)

// exclusive are the commands that change the host: one of them at a
// time works on a state directory.
var exclusive = map[string]bool{"apply": true, "agent": true}

// lockState takes the state directory's lock for command. While another
// apply holds it, it says so and waits; an agent holds it for as long as
// it runs, so then it says so and gives up.
func (c *cli) lockState(ctx context.Context, command string) (*statelock.Lock, error) {
	return statelock.Acquire(ctx, c.stateDir, command, func(h statelock.Holder) error {
		if h.Command == "agent" {
			return fmt.Errorf("state directory %s is managed by a running agent, %v: change the repository, or stop the agent first", c.stateDir, h)
		}
		fmt.Fprintf(c.stderr, "berth %s: waiting for %v, which holds state directory %s\n", command, h, c.stateDir)
		return nil
	})
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"berth.dev/berth/agent"
	"berth.dev/berth/agent/api"
)

// controlCommand returns berth suspend, resume, pin or unpin: they change
// the agent's persisted control record and wake a running agent.
func controlCommand(name string) command {
	for _, c := range controlCommands() {
		if c.name == name {
			return c
		}
	}
	panic("no control command " + name)
}

func controlCommands() []command {
	var socket string
	flags := func(fs *flag.FlagSet, c *cli) {
		fs.StringVar(&socket, "socket", "", "unix socket of the agent's API (default <state-dir>/agent.sock)")
	}
	mk := func(name, args, summary string, change func(ctl *agent.Control, args []string) error) command {
		return command{name: name, args: args, summary: summary, flags: flags,
			run: func(ctx context.Context, c *cli, args []string) error {
				return runControl(ctx, c, socket, args, change)
			}}
	}
	noArgs := func(args []string) error {
		if len(args) > 0 {
			return fmt.Errorf("unexpected arguments %q", args)
		}
		return nil
	}
	return []command{
		mk("suspend", "", "stop the agent from changing anything on this host (persisted)", func(ctl *agent.Control, args []string) error {
			ctl.Suspended = true
			return noArgs(args)
		}),
		mk("resume", "", "let a suspended agent reconcile again", func(ctl *agent.Control, args []string) error {
			ctl.Suspended = false
			return noArgs(args)
		}),
		mk("pin", "REV", "make the agent apply REV (a commit or tag) instead of the fetched head", func(ctl *agent.Control, args []string) error {
			if len(args) != 1 || strings.TrimSpace(args[0]) == "" {
				return errors.New("pin takes one revision (a commit hash or a tag)")
			}
			ctl.Pin = strings.TrimSpace(args[0])
			return nil
		}),
		mk("unpin", "", "make the agent follow the fetched head again", func(ctl *agent.Control, args []string) error {
			ctl.Pin = ""
			return noArgs(args)
		}),
	}
}

func runControl(ctx context.Context, c *cli, socket string, args []string, change func(*agent.Control, []string) error) error {
	ctl, err := agent.ReadControl(c.stateDir)
	if err != nil {
		return err
	}
	if err := change(&ctl, args); err != nil {
		return err
	}
	if err := agent.WriteControl(c.stateDir, ctl); err != nil {
		return err
	}
	state := "following the head"
	switch {
	case ctl.Suspended:
		state = "suspended"
	case ctl.Pin != "":
		state = "pinned to " + ctl.Pin
	}
	if socket == "" {
		socket = filepath.Join(c.stateDir, "agent.sock")
	}
	tctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := api.NewClient(socket).Trigger(tctx); err != nil {
		fmt.Fprintf(c.stdout, "agent %s (recorded; no running agent answered, it applies this when it starts)\n", state)
		return nil
	}
	fmt.Fprintf(c.stdout, "agent %s\n", state)
	return nil
}

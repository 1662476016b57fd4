package main

import (
	"context"
	"errors"
	"flag"

	ctrd "berth.dev/berth/runtime/containerd"
)

type debugOptions struct {
	fs     *flag.FlagSet
	image  string
	target string
	stdin  bool
	tty    bool
	it     bool
}

func debugCommand() command {
	o := &debugOptions{}
	return command{
		name: "debug", args: "POD --image IMG [--target NAME] [-it] [-- CMD…]",
		summary: "run an ephemeral container in a pod's namespaces, removed when it exits",
		run:     o.run,
		flags: func(fs *flag.FlagSet, c *cli) {
			o.fs = fs
			fs.StringVar(&o.image, "image", "", "image of the debug container (pulled if missing)")
			fs.StringVar(&o.target, "target", "", "a container of the pod whose processes the debug container sees")
			fs.BoolVar(&o.stdin, "i", false, "pass standard input to the debug container")
			fs.BoolVar(&o.tty, "t", false, "give the debug container a terminal")
			fs.BoolVar(&o.it, "it", false, "-i and -t together")
		},
	}
}

func (o *debugOptions) run(ctx context.Context, c *cli, args []string) error {
	id, cmd, err := podArgs(o.fs, args)
	if err != nil {
		return err
	}
	if o.image == "" {
		return errors.New("--image is required")
	}
	if o.it {
		o.stdin, o.tty = true, true
	}
	rt, err := c.runtime(ctx)
	if err != nil {
		return err
	}
	defer rt.Close()
	opts := ctrd.DebugOptions{Image: o.image, Command: cmd, Target: o.target,
		ExecOptions: ctrd.ExecOptions{Stdout: c.stdout, Stderr: c.stderr, TTY: o.tty}}
	if o.stdin {
		opts.Stdin = c.stdinReader()
	}
	restore := c.rawTerminal(&opts.ExecOptions)
	defer restore()
	code, err := rt.Debug(ctx, id, opts)
	if err != nil {
		return err
	}
	if code != 0 {
		return &exitCodeError{code: code}
	}
	return nil
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"

	"berth.dev/berth/reconcile"
	ctrd "berth.dev/berth/runtime/containerd"
)

type execOptions struct {
	fs        *flag.FlagSet
	container string
	stdin     bool
	tty       bool
	it        bool
}

func execCommand() command {
	o := &execOptions{}
	return command{
		name: "exec", args: "POD [-c NAME] [-it] -- CMD [ARG…]",
		summary: "run a command in a running container of a pod",
		run:     o.run,
		flags: func(fs *flag.FlagSet, c *cli) {
			o.fs = fs
			fs.StringVar(&o.container, "c", "", "container (default: the pod's only app container)")
			fs.BoolVar(&o.stdin, "i", false, "pass standard input to the command")
			fs.BoolVar(&o.tty, "t", false, "give the command a terminal")
			fs.BoolVar(&o.it, "it", false, "-i and -t together, as for kubectl exec -it")
		},
	}
}

func (o *execOptions) run(ctx context.Context, c *cli, args []string) error {
	id, cmd, err := podArgs(o.fs, args)
	if err != nil {
		return err
	}
	if len(cmd) == 0 {
		return errors.New("no command: give it after --, e.g. berth exec web -- sh")
	}
	if o.it {
		o.stdin, o.tty = true, true
	}
	rt, err := c.runtime(ctx)
	if err != nil {
		return err
	}
	defer rt.Close()
	pod, err := findPod(ctx, rt, id)
	if err != nil {
		return err
	}
	ctr, err := pickContainer(pod, o.container)
	if err != nil {
		return err
	}
	code, err := runExec(ctx, rt, c, pod.ID, ctr.Name, cmd, o.stdin, o.tty)
	if err != nil {
		return err
	}
	if code != 0 {
		return &exitCodeError{code: code}
	}
	return nil
}

// runExec runs cmd in a container with the command's standard streams,
// making a local terminal raw and passing its size on when tty is set.
func runExec(ctx context.Context, rt *ctrd.Runtime, c *cli, id reconcile.PodID, container string, cmd []string, stdin, tty bool) (int, error) {
	opts := ctrd.ExecOptions{Stdout: c.stdout, Stderr: c.stderr, TTY: tty}
	if stdin {
		opts.Stdin = c.stdinReader()
	}
	restore := c.rawTerminal(&opts)
	defer restore()
	return rt.Exec(ctx, id, container, cmd, opts)
}

// rawTerminal puts a local terminal on standard input into raw mode when
// opts ask for a TTY, and delivers its size changes to opts.Resize. It
// returns the function that restores the terminal.
func (c *cli) rawTerminal(opts *ctrd.ExecOptions) func() {
	f, ok := opts.Stdin.(*os.File)
	if !opts.TTY || !ok {
		return func() {}
	}
	restore, err := makeRaw(int(f.Fd()))
	if err != nil {
		return func() {}
	}
	resize := make(chan [2]uint32, 1)
	opts.Resize = resize
	sendSize := func() {
		if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil {
			select {
			case resize <- [2]uint32{uint32(ws.Col), uint32(ws.Row)}:
			default:
			}
		}
	}
	sendSize()
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	go func() {
		for range winch {
			sendSize()
		}
	}()
	return func() {
		signal.Stop(winch)
		restore()
	}
}

// stdinReader is the command's standard input: os.Stdin, unless a test
// set another.
func (c *cli) stdinReader() io.Reader {
	if c.stdin != nil {
		return c.stdin
	}
	return os.Stdin
}

// makeRaw puts the terminal fd into raw mode (as cfmakeraw does) and
// returns the function that restores it.
func makeRaw(fd int) (func(), error) {
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, fmt.Errorf("not a terminal: %w", err)
	}
	raw := *old
	raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	raw.Oflag &^= unix.OPOST
	raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	raw.Cflag &^= unix.CSIZE | unix.PARENB
	raw.Cflag |= unix.CS8
	raw.Cc[unix.VMIN], raw.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &raw); err != nil {
		return nil, err
	}
	return func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }, nil
}

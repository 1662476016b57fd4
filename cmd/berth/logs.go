package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"berth.dev/berth/reconcile"
	ctrd "berth.dev/berth/runtime/containerd"
	"berth.dev/berth/runtime/containerd/crilog"
)

// berth starts itself as a shim group's log daemon when berth-log is not
// installed next to it (see package crilog); that process does only that.
func init() {
	if crilog.IsDriver() {
		os.Exit(crilog.DriverMain())
	}
}

type logsOptions struct {
	fs        *flag.FlagSet
	container string
	follow    bool
	previous  bool
	tail      int
	since     time.Duration
	stderrPfx bool
}

func logsCommand() command {
	o := &logsOptions{}
	return command{
		name: "logs", args: "POD [-c NAME] [-f] [--previous] [--tail N] [--since D]",
		summary: "print a container's log (POD is NAME or NAMESPACE/NAME)",
		run:     o.run,
		flags: func(fs *flag.FlagSet, c *cli) {
			o.fs = fs
			fs.StringVar(&o.container, "c", "", "container (default: the pod's only app container)")
			fs.BoolVar(&o.follow, "f", false, "follow the log while the container runs")
			fs.BoolVar(&o.previous, "previous", false, "the log of the container's previous instance")
			fs.IntVar(&o.tail, "tail", -1, "only the last N lines (-1: all)")
			fs.DurationVar(&o.since, "since", 0, "only lines newer than this, e.g. 10m")
		},
	}
}

// parsePodRef reads NAME or NAMESPACE/NAME.
func parsePodRef(s string) (reconcile.PodID, error) {
	ns, name, ok := strings.Cut(s, "/")
	if !ok {
		ns, name = "default", s
	}
	if ns == "" || name == "" || strings.Contains(name, "/") {
		return reconcile.PodID{}, fmt.Errorf("pod %q: want NAME or NAMESPACE/NAME", s)
	}
	return reconcile.PodID{Namespace: ns, Name: name}, nil
}

// podArgs splits "POD [flags]" where flags may follow the pod, as kubectl
// allows, and parses those flags with fs.
func podArgs(fs *flag.FlagSet, args []string) (reconcile.PodID, []string, error) {
	if len(args) == 0 {
		return reconcile.PodID{}, nil, errors.New("a pod is required (NAME or NAMESPACE/NAME)")
	}
	id, err := parsePodRef(args[0])
	if err != nil {
		return id, nil, err
	}
	if err := fs.Parse(args[1:]); err != nil {
		return id, nil, err
	}
	return id, fs.Args(), nil
}

// findPod returns the observed pod id.
func findPod(ctx context.Context, rt *ctrd.Runtime, id reconcile.PodID) (*reconcile.ObservedPod, error) {
	pods, err := rt.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	for i := range pods {
		if pods[i].ID == id {
			return &pods[i], nil
		}
	}
	return nil, fmt.Errorf("pod %s is not on this host", id)
}

// pickContainer returns the named container of p, or its only app
// container when name is empty.
func pickContainer(p *reconcile.ObservedPod, name string) (*reconcile.ObservedContainer, error) {
	var apps []string
	for i := range p.Containers {
		c := &p.Containers[i]
		if name != "" && c.Name == name {
			return c, nil
		}
		if c.Kind == reconcile.AppContainer {
			apps = append(apps, c.Name)
		}
	}
	if name != "" {
		return nil, fmt.Errorf("pod %s has no container %q", p.ID, name)
	}
	if len(apps) == 1 {
		return p.Container(reconcile.AppContainer, apps[0]), nil
	}
	return nil, fmt.Errorf("pod %s has %d containers (%s): choose one with -c", p.ID, len(apps), strings.Join(apps, ", "))
}

func (o *logsOptions) run(ctx context.Context, c *cli, args []string) error {
	id, rest, err := podArgs(o.fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("unexpected arguments %q", rest)
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
	path := rt.Paths(id).LogPath(ctr.Name)
	if o.previous {
		path = rt.Paths(id).PreviousLogPath(ctr.Name)
		if len(crilog.Files(path)) == 0 {
			return fmt.Errorf("container %q of %s has no previous instance", ctr.Name, id)
		}
	}
	ropts := crilog.ReadOptions{Tail: o.tail}
	if o.since > 0 {
		ropts.Since = time.Now().Add(-o.since)
	}
	var size int64
	if st, err := os.Stat(path); err == nil {
		size = st.Size()
	}
	lines, err := crilog.ReadLines(path, ropts)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(c.stdout)
	for _, l := range lines {
		w.Write(l.Msg)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if !o.follow || o.previous {
		return nil
	}
	// Follow from where the read stopped, until the container stops.
	var mu sync.Mutex
	last := time.Now()
	running := ctr.State == reconcile.StateRunning
	done := func() bool {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(last) < time.Second {
			return !running
		}
		last = time.Now()
		p, err := findPod(ctx, rt, id)
		if err != nil {
			running = false
			return true
		}
		cur := p.Container(ctr.Kind, ctr.Name)
		running = cur != nil && cur.State == reconcile.StateRunning && cur.ID == ctr.ID
		return !running
	}
	if _, err := os.Stat(path); err != nil {
		return nil
	}
	return crilog.Follow(ctx, path, size, c.stdout, done)
}

// containerLogFlags choose how containers' output is kept, and how many
// pods share a shim.
type containerLogFlags struct {
	raw         bool
	podsPerShim int
}

func (l *containerLogFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&l.raw, "raw-logs", false, "write containers' output as it comes, without timestamps or rotation, and without a log daemon")
	fs.IntVar(&l.podsPerShim, "pods-per-shim", ctrd.DefaultPodsPerShim, "pods sharing one runc shim and one log daemon (1: a shim per pod); killing a shim kills the containers of all its pods")
}

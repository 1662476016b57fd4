package containerd

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"

	"berth.dev/berth/reconcile"
)

var _ reconcile.Execer = (*Runtime)(nil)

// ExecOptions are the streams and terminal of a command run in a
// container.
type ExecOptions struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// TTY gives the command a terminal; Stderr is then unused (the
	// terminal carries both streams).
	TTY bool
	// Resize, when set, delivers terminal sizes (columns, rows).
	Resize <-chan [2]uint32
}

// ExecSync runs cmd in the named running app container of pod id and
// waits for it, at most timeout (zero: no limit beyond ctx); a command
// still running then is killed and reported as an error. It implements
// reconcile.Execer.
func (r *Runtime) ExecSync(ctx context.Context, id reconcile.PodID, container string, cmd []string, timeout time.Duration) (reconcile.ExecResult, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var stdout, stderr bytes.Buffer
	code, err := r.Exec(ctx, id, container, cmd, ExecOptions{Stdout: &limitedBuffer{b: &stdout}, Stderr: &limitedBuffer{b: &stderr}})
	res := reconcile.ExecResult{ExitCode: code, Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	if err != nil && errors.Is(err, context.DeadlineExceeded) && timeout > 0 {
		return res, fmt.Errorf("exec %q in %s/%s: timed out after %s", cmd, id, container, timeout)
	}
	return res, err
}

// maxExecOutput bounds what ExecSync keeps of each stream.
const maxExecOutput = 16 << 10

type limitedBuffer struct{ b *bytes.Buffer }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := maxExecOutput - l.b.Len(); room > 0 {
		if len(p) > room {
			l.b.Write(p[:room])
		} else {
			l.b.Write(p)
		}
	}
	return len(p), nil
}

// Exec runs cmd in the named running container of pod id (app, init or
// debug) with the container's user, environment and working directory,
// streams its input and output, and returns its exit code. When ctx ends
// first, the command is killed.
func (r *Runtime) Exec(ctx context.Context, id reconcile.PodID, container string, cmd []string, opts ExecOptions) (int, error) {
	ctx = r.nsctx(ctx)
	if len(cmd) == 0 {
		return 0, errors.New("exec: no command")
	}
	ctr, err := r.loadContainer(ctx, id, container)
	if err != nil {
		return 0, err
	}
	cid := ctr.ID()
	labels, err := ctr.Labels(ctx)
	if err != nil {
		return 0, err
	}
	if labels[LabelManaged] != "true" {
		return 0, fmt.Errorf("container %s: %w", cid, errNotManaged)
	}
	task, err := ctr.Task(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("container %q of %s is not running: %w", container, id, err)
	}
	spec, err := ctr.Spec(ctx)
	if err != nil {
		return 0, err
	}
	pspec := *spec.Process
	pspec.Args = cmd
	pspec.Terminal = opts.TTY
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	execID := "exec-" + hex.EncodeToString(suffix[:])

	var proc client.Process
	started := make(chan struct{})
	var startedOK bool
	var stdin io.Reader
	if opts.Stdin != nil && opts.TTY {
		stdin = opts.Stdin // a terminal hangs up when closed: the command ends on its own
	} else if opts.Stdin != nil {
		// At the end of our input, close the command's: the shim does
		// not notice the FIFO's writer going away.
		stdin = &eofReader{r: opts.Stdin, onEOF: func() {
			<-started
			if startedOK {
				_ = proc.CloseIO(context.WithoutCancel(ctx), client.WithStdinCloser)
			}
		}}
	}
	var streams []cio.Opt
	stdout, stderr := opts.Stdout, opts.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	streams = append(streams, cio.WithStreams(stdin, stdout, stderr))
	if opts.TTY {
		streams = append(streams, cio.WithTerminal)
	}
	// FIFOs in the pod's directory: the default location is shared and
	// harder to account for.
	fifoDir := filepath.Join(r.Paths(id).Dir, "exec")
	if err := os.MkdirAll(fifoDir, 0o700); err != nil {
		return 0, err
	}
	streams = append(streams, cio.WithFIFODir(fifoDir))
	proc, err = task.Exec(ctx, execID, &pspec, cio.NewCreator(streams...))
	if err != nil {
		close(started)
		return 0, fmt.Errorf("exec in %s: %w", cid, err)
	}
	cleanup := func() {
		dctx, cancel := r.cleanupContext(ctx, 10*time.Second)
		defer cancel()
		if _, err := proc.Delete(dctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			r.log.Debug("delete exec process", "container", cid, "error", err)
		}
	}
	defer cleanup()
	exited, err := proc.Wait(context.WithoutCancel(ctx))
	if err != nil {
		close(started)
		return 0, fmt.Errorf("exec in %s: %w", cid, err)
	}
	if err := proc.Start(ctx); err != nil {
		close(started)
		return 0, fmt.Errorf("exec %q in %s: %w", strings.Join(cmd, " "), cid, err)
	}
	startedOK = true
	close(started)
	if opts.Resize != nil {
		go func() {
			for sz := range opts.Resize {
				_ = proc.Resize(ctx, sz[0], sz[1])
			}
		}()
	}
	select {
	case st := <-exited:
		proc.IO().Wait()
		code, _, err := st.Result()
		if err != nil {
			return 0, fmt.Errorf("exec in %s: %w", cid, err)
		}
		return int(code), nil
	case <-ctx.Done():
		kctx, cancel := r.cleanupContext(ctx, 10*time.Second)
		defer cancel()
		_ = proc.Kill(kctx, syscall.SIGKILL)
		select {
		case <-exited:
		case <-kctx.Done():
		}
		return 0, ctx.Err()
	}
}

// oomKilled reports whether the cgroup of the container cid in containerd
// namespace ns recorded an OOM kill (cgroup v1 memory.oom_control's
// oom_kill counter, or v2 memory.events' oom_kill). The cgroup lives until
// the task is deleted.
func oomKilled(ns, cid string) bool {
	for _, f := range []string{
		filepath.Join("/sys/fs/cgroup/memory", ns, cid, "memory.oom_control"),
		filepath.Join("/sys/fs/cgroup", ns, cid, "memory.events"),
	} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, " ")
			if ok && k == "oom_kill" {
				n, _ := strconv.Atoi(strings.TrimSpace(v))
				return n > 0
			}
		}
	}
	return false
}

// exitReason is Kubernetes' terminated reason for an exited container.
func exitReason(ns, cid string, code int) string {
	switch {
	case code == 137 && oomKilled(ns, cid):
		return "OOMKilled"
	case code != 0:
		return "Error"
	}
	return "Completed"
}

// eofReader calls onEOF once when r is exhausted.
type eofReader struct {
	r     io.Reader
	onEOF func()
	done  bool
}

func (e *eofReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF && !e.done {
		e.done = true
		e.onEOF()
	}
	return n, err
}

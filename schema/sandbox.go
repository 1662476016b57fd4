package schema

import (
	"bufio"
	"bytes"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"berth.dev/berth/reconcile"
)

// Default bounds of a Sandbox.
const (
	// DefaultCUETimeout is how long one CUE package may evaluate.
	DefaultCUETimeout = 10 * time.Second
	// DefaultCUEMemory is how much memory the evaluating process may use.
	DefaultCUEMemory = 512 << 20
)

// Sandbox evaluates CUE packages in a child process, so that a package
// whose evaluation does not end, recurses without bound or eats memory is
// stopped and reported instead of taking the caller down. The child is
// Command, a program that calls ServeSandbox (berth re-executes itself with
// a hidden argument; a test binary uses TestMain).
//
// The child evaluates packages on every CPU and streams a result per
// package, in order; it is kept for the next load, so a revision that
// changes one package does not pay for a process start. When it is killed
// (deadline, memory) or crashes (stack overflow), the remaining packages
// are evaluated again one at a time by a new child, so that the package at
// fault gets the error naming the bound and the others still load.
type Sandbox struct {
	// Command is the program and its arguments.
	Command []string
	// Env is added to the child's environment.
	Env []string
	// Timeout bounds the evaluation of one package; zero means
	// DefaultCUETimeout.
	Timeout time.Duration
	// MemoryLimit bounds the child's resident memory, in bytes; zero means
	// DefaultCUEMemory.
	MemoryLimit int64

	mu    sync.Mutex
	child *sandboxChild
}

// Close stops the child the Sandbox keeps between loads, if any. A child
// also ends by itself when this process exits.
func (s *Sandbox) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.child != nil {
		_ = s.child.stop()
		s.child = nil
	}
}

// softMemory is the heap size above which the child collects garbage
// more eagerly.
const softMemory = 64 << 20

// maxStack bounds a goroutine's stack in the child, so that unbounded
// recursion fails fast instead of growing to the runtime's 1 GiB.
const maxStack = 64 << 20

// ServeSandbox is the child side of a Sandbox: it reads jobs from r,
// evaluates them in order and writes one result per job to w. It returns
// the process exit code.
func ServeSandbox(r io.Reader, w io.Writer) int {
	watchParent()
	debug.SetMaxStack(maxStack)
	// Collect harder as the heap nears softMemory (or half the bound, if
	// that is less): packages evaluated in parallel then stay small. The
	// hard bound is the parent's.
	soft := int64(softMemory)
	if v, err := strconv.ParseInt(os.Getenv(memoryEnv), 10, 64); err == nil && v > 0 {
		soft = min(soft, v/2)
	}
	debug.SetMemoryLimit(soft)
	workers := runtime.GOMAXPROCS(0)
	if os.Getenv(serialEnv) == "1" {
		workers = 1
	}
	dec := gob.NewDecoder(r)
	bw := bufio.NewWriter(w)
	enc := gob.NewEncoder(bw)
	// Batches come one after the other until the parent closes the pipe.
	for {
		var jobs []*cueJob
		if err := dec.Decode(&jobs); err != nil {
			if err == io.EOF {
				return 0
			}
			fmt.Fprintf(os.Stderr, "sandbox: read jobs: %v\n", err)
			return 2
		}
		if !serveBatch(jobs, workers, enc, bw) {
			return 2
		}
		// Give the batch's memory back, so that an idle child is small.
		debug.FreeOSMemory()
	}
}

// serveBatch evaluates packages on up to workers CPUs, each in its own CUE
// context, and writes the results in order, each as soon as it and those
// before it are done: the parent blames the first package without a result.
func serveBatch(jobs []*cueJob, workers int, enc *gob.Encoder, bw *bufio.Writer) bool {
	results := make([]chan cueResult, len(jobs))
	for i := range results {
		results[i] = make(chan cueResult, 1)
	}
	next := make(chan int)
	for range min(workers, len(jobs)) {
		go func() {
			for i := range next {
				results[i] <- evalJob(jobs[i])
			}
		}()
	}
	go func() {
		for i := range jobs {
			next <- i
		}
		close(next)
	}()
	for i := range jobs {
		res := <-results[i]
		if err := enc.Encode(&res); err != nil {
			fmt.Fprintf(os.Stderr, "sandbox: write result: %v\n", err)
			return false
		}
		if err := bw.Flush(); err != nil {
			return false
		}
	}
	return true
}

// parentEnv tells the child its parent's process ID: the child exits
// when its parent is gone (killed, or done waiting after SIGTERM), even in
// the middle of an evaluation that would not end.
const parentEnv = "BERTH_SANDBOX_PARENT"

// watchParent ends this process once its parent, the process whose ID
// parentEnv holds, is no longer its parent.
func watchParent() {
	parent, err := strconv.Atoi(os.Getenv(parentEnv))
	if err != nil {
		return
	}
	go func() {
		for ; os.Getppid() == parent; time.Sleep(200 * time.Millisecond) {
		}
		fmt.Fprintln(os.Stderr, "sandbox: the parent process is gone")
		os.Exit(2)
	}()
}

// memoryEnv tells the child the memory bound.
const memoryEnv = "BERTH_SANDBOX_MEMORY"

// serialEnv makes the child evaluate one package at a time.
const serialEnv = "BERTH_SANDBOX_SERIAL"

// run evaluates jobs in children, returning one result per job. The first
// child evaluates packages in parallel; if it fails while more than one
// package was left, the rest is evaluated again one at a time, so that the
// failure is blamed on the package that caused it.
func (s *Sandbox) run(jobs []*cueJob) ([]cueResult, error) {
	var results []cueResult
	serial := false
	for len(jobs) > 0 {
		done, failure, err := s.runChild(jobs, serial)
		if err != nil {
			return nil, err
		}
		results = append(results, done...)
		jobs = jobs[len(done):]
		if failure != "" && !serial && len(jobs) > 1 {
			serial = true
			continue
		}
		if failure != "" && len(jobs) > 0 {
			results = append(results, cueResult{Diags: []Diagnostic{{
				Pos:     packagePos(jobs[0]),
				Message: failure,
			}}})
			jobs = jobs[1:]
		}
	}
	return results, nil
}

// packagePos is where a package's failure is reported: its first file.
func packagePos(j *cueJob) (p reconcile.Position) {
	first := ""
	for name := range j.Files {
		if strings.HasSuffix(name, ".cue") && path.Dir(name) == j.Dir && (first == "" || name < first) {
			first = name
		}
	}
	p.File = fileName(first)
	return p
}

// sandboxChild is a running child process and the streams to it.
type sandboxChild struct {
	cmd     *exec.Cmd
	in      io.WriteCloser
	enc     *gob.Encoder
	results chan childMsg
	// ended is closed once the child's output has ended, before that is
	// reported on results, so alive never mistakes a dead child for a
	// live one.
	ended  chan struct{}
	stderr *bytes.Buffer
	serial bool
}

type childMsg struct {
	res cueResult
	err error
}

// start starts a child.
func (s *Sandbox) start(serial bool) (*sandboxChild, error) {
	if len(s.Command) == 0 {
		return nil, errors.New("sandbox: no command")
	}
	cmd := exec.Command(s.Command[0], s.Command[1:]...)
	cmd.Env = append(os.Environ(), s.Env...)
	cmd.Env = append(cmd.Env, memoryEnv+"="+strconv.FormatInt(s.memoryLimit(), 10), parentEnv+"="+strconv.Itoa(os.Getpid()))
	if serial {
		cmd.Env = append(cmd.Env, serialEnv+"=1")
	}
	var stderr bytes.Buffer
	cmd.Stderr = &limitedWriter{w: &stderr, n: 64 << 10}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("sandbox: start %s: %w", s.Command[0], err)
	}
	c := &sandboxChild{cmd: cmd, in: in, enc: gob.NewEncoder(in), results: make(chan childMsg), ended: make(chan struct{}), stderr: &stderr, serial: serial}
	go func() {
		dec := gob.NewDecoder(bufio.NewReader(out))
		for {
			var r cueResult
			err := dec.Decode(&r)
			if err != nil {
				close(c.ended)
			}
			c.results <- childMsg{r, err}
			if err != nil {
				close(c.results)
				return
			}
		}
	}()
	return c, nil
}

// alive reports whether the idle child still runs: its output is still
// open (an idle child writes nothing, so anything on results means it
// ended) and the process exists.
func (c *sandboxChild) alive() bool {
	select {
	case <-c.ended:
		return false
	case <-c.results:
		return false
	default:
	}
	return c.cmd.Process.Signal(syscall.Signal(0)) == nil
}

// stop ends the child and waits for it.
func (c *sandboxChild) stop() error {
	c.in.Close()
	_ = c.cmd.Process.Kill()
	go func() {
		for range c.results {
		}
	}()
	return c.cmd.Wait()
}

func (s *Sandbox) memoryLimit() int64 {
	if s.MemoryLimit <= 0 {
		return DefaultCUEMemory
	}
	return s.MemoryLimit
}

// runChild evaluates jobs in a child and returns the results it delivered.
// failure, when not empty, says why the child stopped before the next job
// was done. The child of the parallel mode is kept for the next call, so
// that a revision changing one package does not pay for a process start;
// a child that failed is stopped.
func (s *Sandbox) runChild(jobs []*cueJob, serial bool) (done []cueResult, failure string, err error) {
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultCUETimeout
	}
	limit := s.memoryLimit()
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.child
	if c != nil && !serial && !c.alive() {
		// A kept child that ended while idle is no package's fault.
		_ = c.stop()
		s.child, c = nil, nil
	}
	if c == nil || serial {
		if c, err = s.start(serial); err != nil {
			return nil, "", err
		}
	}
	keep := !serial
	defer func() {
		if keep && failure == "" && err == nil {
			s.child = c
			return
		}
		if s.child == c {
			s.child = nil
		}
		werr := c.stop()
		if failure == "" && len(done) < len(jobs) {
			failure = childFailure(c.stderr.String(), werr, limit)
		}
	}()
	if err := c.enc.Encode(jobs); err != nil {
		// The child is gone; it said why on stderr.
		keep = false
		return nil, "", nil
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for len(done) < len(jobs) {
		select {
		case m, ok := <-c.results:
			if !ok || m.err != nil {
				keep = false
				return done, "", nil
			}
			done = append(done, m.res)
			timer.Reset(timeout)
		case <-timer.C:
			keep = false
			return done, fmt.Sprintf("CUE evaluation of this package did not finish within %s; is there a cycle or unbounded recursion?", timeout), nil
		case <-tick.C:
			if rss := residentBytes(c.cmd.Process.Pid); rss > limit {
				keep = false
				return done, fmt.Sprintf("CUE evaluation of this package used more than %s of memory", formatSize(limit)), nil
			}
		}
	}
	return done, "", nil
}

// childFailure explains why a child ended early, from what it printed.
func childFailure(text string, werr error, limit int64) string {
	switch {
	case strings.Contains(text, "stack exceeds"):
		return "CUE evaluation of this package recursed too deeply"
	case strings.Contains(text, "out of memory"):
		return fmt.Sprintf("CUE evaluation of this package used more than %s of memory", formatSize(limit))
	}
	reason := "CUE evaluation of this package failed"
	first, _, _ := strings.Cut(strings.TrimSpace(text), "\n")
	if werr != nil {
		reason += ": " + strings.TrimSpace(werr.Error()+" "+first)
	} else if first != "" {
		reason += ": " + first
	}
	return reason
}

// residentBytes returns the resident memory of process pid, or 0.
func residentBytes(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// limitedWriter keeps the first n bytes written to it.
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}

package schema

import (
	"bufio"
	"bytes"
	"context"
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
// The child evaluates the packages one after the other and streams a result
// per package. When it is killed (deadline, memory) or crashes (stack
// overflow), the package it was evaluating gets an error naming the bound
// and the packages after it are evaluated by a new child.
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
	debug.SetMaxStack(maxStack)
	var jobs []*cueJob
	if err := gob.NewDecoder(r).Decode(&jobs); err != nil {
		fmt.Fprintf(os.Stderr, "sandbox: read jobs: %v\n", err)
		return 2
	}
	// Collect harder as the heap nears softMemory (or half the bound, if
	// that is less): packages evaluated in parallel then stay small. The
	// hard bound is the parent's.
	soft := int64(softMemory)
	if v, err := strconv.ParseInt(os.Getenv(memoryEnv), 10, 64); err == nil && v > 0 {
		soft = min(soft, v/2)
	}
	debug.SetMemoryLimit(soft)
	// Evaluate packages on every CPU, each in its own CUE context, and
	// write the results in order, each as soon as it and those before it
	// are done: the parent blames the first package without a result.
	results := make([]chan cueResult, len(jobs))
	for i := range results {
		results[i] = make(chan cueResult, 1)
	}
	next := make(chan int)
	workers := runtime.GOMAXPROCS(0)
	if os.Getenv(serialEnv) == "1" {
		workers = 1
	}
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
	bw := bufio.NewWriter(w)
	enc := gob.NewEncoder(bw)
	for i := range jobs {
		res := <-results[i]
		if err := enc.Encode(&res); err != nil {
			fmt.Fprintf(os.Stderr, "sandbox: write result: %v\n", err)
			return 2
		}
		if err := bw.Flush(); err != nil {
			return 2
		}
	}
	return 0
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

// runChild starts one child for jobs and returns the results it delivered.
// failure, when not empty, says why the child stopped before the next job
// was done.
func (s *Sandbox) runChild(jobs []*cueJob, serial bool) (done []cueResult, failure string, err error) {
	if len(s.Command) == 0 {
		return nil, "", errors.New("sandbox: no command")
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultCUETimeout
	}
	limit := s.MemoryLimit
	if limit <= 0 {
		limit = DefaultCUEMemory
	}
	var in bytes.Buffer
	if err := gob.NewEncoder(&in).Encode(jobs); err != nil {
		return nil, "", fmt.Errorf("sandbox: encode jobs: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, s.Command[0], s.Command[1:]...)
	cmd.Env = append(os.Environ(), s.Env...)
	cmd.Env = append(cmd.Env, memoryEnv+"="+strconv.FormatInt(limit, 10))
	if serial {
		cmd.Env = append(cmd.Env, serialEnv+"=1")
	}
	cmd.Stdin = &in
	var stderr bytes.Buffer
	cmd.Stderr = &limitedWriter{w: &stderr, n: 64 << 10}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("sandbox: start %s: %w", s.Command[0], err)
	}

	type msg struct {
		res cueResult
		err error
	}
	results := make(chan msg)
	go func() {
		dec := gob.NewDecoder(bufio.NewReader(out))
		for {
			var r cueResult
			err := dec.Decode(&r)
			results <- msg{r, err}
			if err != nil {
				return
			}
		}
	}()

	var reason string
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
loop:
	for {
		select {
		case m := <-results:
			if m.err != nil {
				break loop
			}
			done = append(done, m.res)
			if len(done) == len(jobs) {
				break loop
			}
			timer.Reset(timeout)
		case <-timer.C:
			reason = fmt.Sprintf("CUE evaluation of this package did not finish within %s; is there a cycle or unbounded recursion?", timeout)
			cancel()
		case <-tick.C:
			if rss := residentBytes(cmd.Process.Pid); rss > limit {
				reason = fmt.Sprintf("CUE evaluation of this package used more than %s of memory", formatSize(limit))
				cancel()
			}
		}
	}
	if reason != "" {
		// Drain the reader so that it ends.
		go func() {
			for m := range results {
				if m.err != nil {
					return
				}
			}
		}()
	}
	werr := cmd.Wait()
	if len(done) == len(jobs) {
		return done, "", nil
	}
	if reason == "" {
		reason = "CUE evaluation of this package failed"
		switch text := stderr.String(); {
		case strings.Contains(text, "stack exceeds"):
			reason = "CUE evaluation of this package recursed too deeply"
		case strings.Contains(text, "out of memory"):
			reason = fmt.Sprintf("CUE evaluation of this package used more than %s of memory", formatSize(limit))
		case werr != nil:
			first, _, _ := strings.Cut(strings.TrimSpace(text), "\n")
			reason += ": " + strings.TrimSpace(werr.Error()+" "+first)
		}
	}
	return done, reason, nil
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

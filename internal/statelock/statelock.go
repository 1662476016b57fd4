// Package statelock keeps one berth process at a time changing a state
// directory: `berth apply` and `berth agent` take an exclusive flock(2) on
// <state-dir>/berth.lock for as long as they run. The kernel drops the lock
// when the process dies, so a killed holder never leaves the directory
// locked; the file records who holds it, so a second process can say so.
package statelock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// FileName is the lock file's name in the state directory.
const FileName = "berth.lock"

// Holder describes the process that holds a lock.
type Holder struct {
	PID     int       `json:"pid"`
	Command string    `json:"command"`
	Since   time.Time `json:"since"`
}

func (h Holder) String() string {
	if h.PID == 0 {
		return "another process"
	}
	return fmt.Sprintf("pid %d (berth %s, since %s)", h.PID, h.Command, h.Since.Format(time.RFC3339))
}

// Lock is a held state directory lock.
type Lock struct{ f *os.File }

// ErrHeld is returned by TryAcquire when another process holds the lock.
var ErrHeld = errors.New("the state directory is locked")

// HeldError says who holds a lock.
type HeldError struct{ Holder Holder }

func (e *HeldError) Error() string { return fmt.Sprintf("%v by %v", ErrHeld, e.Holder) }

// Unwrap makes errors.Is(err, ErrHeld) true.
func (e *HeldError) Unwrap() error { return ErrHeld }

// TryAcquire takes the lock of dir for command at once, or returns a
// *HeldError naming the holder.
func TryAcquire(dir, command string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, FileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state directory lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, &HeldError{Holder: ReadHolder(dir)}
		}
		return nil, fmt.Errorf("state directory lock %s: %w", path, err)
	}
	b, _ := json.Marshal(Holder{PID: os.Getpid(), Command: command, Since: time.Now().UTC().Truncate(time.Second)})
	// The record is advisory: a full disk must not keep berth from
	// running, so failing to write it is no error.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt(append(b, '\n'), 0)
	}
	return &Lock{f: f}, nil
}

// Acquire takes the lock of dir for command, waiting while another
// process holds it: wait is called with the holder each time the holder
// changes, and may return an error to stop waiting (for example when the
// holder is an agent, which does not let go). It returns ctx's error
// when ctx ends first.
func Acquire(ctx context.Context, dir, command string, wait func(Holder) error) (*Lock, error) {
	var last Holder
	for delay := 50 * time.Millisecond; ; delay = min(2*delay, time.Second) {
		l, err := TryAcquire(dir, command)
		var held *HeldError
		if !errors.As(err, &held) {
			return l, err
		}
		if held.Holder != last {
			last = held.Holder
			if err := wait(last); err != nil {
				return nil, err
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the state directory lock held by %v: %w", last, ctx.Err())
		case <-time.After(delay):
		}
	}
}

// ReadHolder returns the recorded holder of dir's lock (zero when none
// is recorded or the file cannot be read).
func ReadHolder(dir string) Holder {
	var h Holder
	b, err := os.ReadFile(filepath.Join(dir, FileName))
	if err == nil {
		_ = json.Unmarshal(b, &h)
	}
	return h
}

// Release lets the lock go. The file stays, so its inode is the same for
// every process that opens it.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

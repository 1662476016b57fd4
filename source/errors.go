package source

import (
	"errors"
	"strings"
)

// Errors a Fetch can wrap. Test with errors.Is. ErrUnsafeSymlink,
// ErrUnsafePath, ErrFileTooLarge, ErrTooManyFiles and ErrUnsupportedFile come
// inside a *ContentError and need a new commit; ErrRefNotFound and
// ErrPathNotFound need a new commit or other options. Network and
// authentication failures are none of these and are worth retrying.
var (
	// ErrRefNotFound: the ref names no branch, tag or commit.
	ErrRefNotFound = errors.New("ref not found")
	// ErrPathNotFound: Options.Path is not a directory of the revision.
	ErrPathNotFound = errors.New("path not found")
	// ErrUnsafeSymlink: a symlink is absolute, escapes the repository, loops
	// or dangles.
	ErrUnsafeSymlink = errors.New("unsafe symlink")
	// ErrUnsafePath: a file name in the repository is not a plain name
	// ("..", ".", a slash or NUL inside a Git tree entry).
	ErrUnsafePath = errors.New("unsafe path")
	// ErrFileTooLarge: a file is larger than Options.MaxFileSize, or the
	// snapshot larger than Options.MaxTotalSize.
	ErrFileTooLarge = errors.New("file too large")
	// ErrTooManyFiles: the snapshot has more than Options.MaxFiles files.
	ErrTooManyFiles = errors.New("too many files")
	// ErrUnsupportedFile: a device, socket or FIFO in a directory source.
	ErrUnsupportedFile = errors.New("unsupported file type")
	// ErrEmptyRepository: the remote repository has no commits.
	ErrEmptyRepository = errors.New("repository is empty")
	// ErrAuth: the server refused the credentials, or wants some.
	ErrAuth = errors.New("authentication failed")
)

// ContentError is repository content a snapshot refuses: an unsafe symlink
// or name, a file over the size limit, too many files.
type ContentError struct {
	// Path is the offending file, relative to the repository root and
	// starting with "./".
	Path string
	// Err says what is wrong; it wraps one of the Err* values.
	Err error
}

// Error formats e as "./path: reason".
func (e *ContentError) Error() string { return e.Path + ": " + e.Err.Error() }

// Unwrap returns e.Err.
func (e *ContentError) Unwrap() error { return e.Err }

// redactedError carries the message of err with secrets replaced. It matches
// errors.Is against err, but does not unwrap to it, so no caller can print
// the original text.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }

func (e *redactedError) Is(target error) bool { return errors.Is(e.err, target) }

// redactor replaces secrets in error messages.
type redactor struct {
	// pairs is old, new, old, new... for strings.NewReplacer.
	pairs []string
}

func newRedactor(raw, display string, a Auth, loc *location) *redactor {
	r := &redactor{}
	if raw != display {
		r.pairs = append(r.pairs, raw, display)
	}
	for _, s := range []string{a.Password, a.BearerToken, a.SSHKeyPassphrase, loc.password} {
		if s != "" {
			r.pairs = append(r.pairs, s, "<redacted>")
		}
	}
	return r
}

// wrap returns err with every known secret removed from its message.
func (r *redactor) wrap(err error) error {
	if err == nil || r == nil || len(r.pairs) == 0 {
		return err
	}
	msg := strings.NewReplacer(r.pairs...).Replace(err.Error())
	msg = redactUserinfoAll(msg)
	return &redactedError{msg: msg, err: err}
}

// redactUserinfoAll removes user info from every URL-looking word of s.
func redactUserinfoAll(s string) string {
	if !strings.Contains(s, "://") || !strings.Contains(s, "@") {
		return s
	}
	words := strings.Fields(s)
	changed := false
	for i, w := range words {
		if strings.Contains(w, "://") {
			if red := redactUserinfo(w); red != w {
				words[i] = red
				changed = true
			}
		}
	}
	if !changed {
		return s
	}
	return strings.Join(words, " ")
}

package source

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"
)

// maxSymlinks bounds how many symlinks one lookup follows, as Linux does.
const maxSymlinks = 40

// nodeKind is what a tree entry is.
type nodeKind int

const (
	kindFile nodeKind = iota
	kindDir
	kindSymlink
	kindSubmodule // a Git gitlink: skipped
	kindOther     // device, socket, FIFO: refused
)

// node is one entry of a tree being snapshotted.
type node struct {
	name string
	kind nodeKind
	exec bool // executable regular file
	id   any  // the backend's handle (a Git blob hash)
}

// tree is what a snapshot reads: a Git tree or a directory on disk. Names
// are slash-separated, relative to the repository root, "" being the root,
// and never contain symlinks (the builder resolves them one element at a
// time).
type tree interface {
	// lstat describes name without following a final symlink; a missing name
	// returns an error wrapping fs.ErrNotExist.
	lstat(name string) (node, error)
	// readDir lists the directory name, failing with errTooManyEntries
	// when it holds more than max entries, before reading them all.
	readDir(name string, max int) ([]node, error)
	// readlink returns the target of the symlink n at name.
	readlink(name string, n node) (string, error)
	// readFile returns the content of the regular file n at name, failing
	// with errTooLarge when it has more than limit bytes.
	readFile(name string, n node, limit int64) ([]byte, error)
}

// errTooLarge is returned by tree.readFile; the builder turns it into a
// ContentError.
type errTooLarge struct{ size int64 }

func (e errTooLarge) Error() string { return "file too large" }

// errTooManyEntries is returned by tree.readDir.
var errTooManyEntries = errors.New("too many entries")

type limits struct {
	maxFile  int64
	maxTotal int64
	maxFiles int
	// maxDepth bounds how deep directories nest; maxEntries the entries
	// of one directory.
	maxDepth   int
	maxEntries int
}

// builder copies the part of a tree under one directory into a memFS,
// keeping every symlink inside the repository.
type builder struct {
	t      tree
	lim    limits
	out    *memFS
	total  int64
	dirs   int
	warn   func(msg string, args ...any)
	ancest []string // real paths of the directories being walked, for loops
}

// snapshot reads the directory root of t (a cleaned path, "" for the
// repository root) into an in-memory file system.
func snapshot(t tree, root string, lim limits, mod time.Time, warn func(string, ...any)) (*memFS, error) {
	b := &builder{t: t, lim: lim, out: newMemFS(mod), warn: warn}
	real := ""
	if root != "" {
		var err error
		real, err = b.resolve(root, root)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("path %q: %w", root, ErrPathNotFound)
			}
			return nil, err
		}
	}
	n, err := b.t.lstat(real)
	if err != nil {
		return nil, fmt.Errorf("path %q: %w", root, ErrPathNotFound)
	}
	if n.kind != kindDir {
		return nil, fmt.Errorf("path %q is not a directory: %w", root, ErrPathNotFound)
	}
	if err := b.walk(real, root, "."); err != nil {
		return nil, err
	}
	b.out.seal()
	return b.out, nil
}

// display formats a repository path for errors: "./a/b".
func display(name string) string {
	if name == "" {
		return "."
	}
	return "./" + name
}

func contentErr(name string, format string, args ...any) error {
	return &ContentError{Path: display(name), Err: fmt.Errorf(format, args...)}
}

// walk copies the directory at real (symlink-free) into out, where shown is
// the path a user sees in the repository (it may pass through symlinks).
func (b *builder) walk(real, shown, out string) error {
	for _, a := range b.ancest {
		if a == real {
			return contentErr(shown, "symlink loop through %q: %w", display(real), ErrUnsafeSymlink)
		}
	}
	// The root is at depth 0.
	if len(b.ancest) > b.lim.maxDepth {
		return contentErr(shown, "directories nested deeper than %d levels: %w", b.lim.maxDepth, ErrTooManyFiles)
	}
	b.ancest = append(b.ancest, real)
	defer func() { b.ancest = b.ancest[:len(b.ancest)-1] }()

	ents, err := b.t.readDir(real, b.lim.maxEntries)
	if errors.Is(err, errTooManyEntries) {
		return contentErr(shown, "directory has more than %d entries: %w", b.lim.maxEntries, ErrTooManyFiles)
	}
	if err != nil {
		return fmt.Errorf("read directory %s: %w", display(shown), err)
	}
	if out != "." {
		if b.dirs++; b.dirs > b.lim.maxFiles {
			return contentErr(shown, "more than %d directories: %w", b.lim.maxFiles, ErrTooManyFiles)
		}
		b.out.addDir(out)
	}
	for _, e := range ents {
		eShown := join(shown, e.name)
		if !validName(e.name) {
			return contentErr(eShown, "invalid file name %q: %w", e.name, ErrUnsafePath)
		}
		if strings.EqualFold(e.name, ".git") {
			continue
		}
		eReal := join(real, e.name)
		eOut := e.name
		if out != "." {
			eOut = out + "/" + e.name
		}
		n := e
		target := eReal
		if e.kind == kindSymlink {
			target, err = b.resolve(eReal, eShown)
			if err != nil {
				return err
			}
			n, err = b.t.lstat(target)
			if err != nil {
				return contentErr(eShown, "symlink target %s: %w", display(target), err)
			}
		}
		switch n.kind {
		case kindDir:
			if err := b.walk(target, eShown, eOut); err != nil {
				return err
			}
		case kindFile:
			if err := b.addFile(target, eShown, eOut, n); err != nil {
				return err
			}
		case kindSubmodule:
			b.warn("skipping git submodule", "path", display(eShown))
		default:
			return contentErr(eShown, "not a regular file, directory or symlink: %w", ErrUnsupportedFile)
		}
	}
	return nil
}

func (b *builder) addFile(real, shown, out string, n node) error {
	if len(b.out.files) >= b.lim.maxFiles {
		return contentErr(shown, "more than %d files: %w", b.lim.maxFiles, ErrTooManyFiles)
	}
	data, err := b.t.readFile(real, n, b.lim.maxFile)
	if err != nil {
		var tl errTooLarge
		if errors.As(err, &tl) {
			if tl.size > 0 {
				return contentErr(shown, "%s exceeds the limit of %s: %w", bytesText(tl.size), bytesText(b.lim.maxFile), ErrFileTooLarge)
			}
			return contentErr(shown, "larger than the limit of %s: %w", bytesText(b.lim.maxFile), ErrFileTooLarge)
		}
		return fmt.Errorf("read %s: %w", display(shown), err)
	}
	b.total += int64(len(data))
	if b.total > b.lim.maxTotal {
		return contentErr(shown, "snapshot exceeds the total limit of %s: %w", bytesText(b.lim.maxTotal), ErrFileTooLarge)
	}
	mode := fs.FileMode(0o444)
	if n.exec {
		mode = 0o555
	}
	b.out.add(out, data, mode)
	return nil
}

// resolve follows the symlinks in name, one element at a time, and returns
// the symlink-free path it denotes. It fails when a symlink is absolute,
// when ".." would leave the repository, or after maxSymlinks symlinks. shown
// names the entry being resolved in errors.
func (b *builder) resolve(name, shown string) (string, error) {
	var done []string
	todo := strings.Split(name, "/")
	links := 0
	for len(todo) > 0 {
		elem := todo[0]
		todo = todo[1:]
		switch elem {
		case "", ".":
			continue
		case "..":
			if len(done) == 0 {
				return "", contentErr(shown, "symlink leads outside the repository: %w", ErrUnsafeSymlink)
			}
			done = done[:len(done)-1]
			continue
		}
		cur := strings.Join(append(done, elem), "/")
		n, err := b.t.lstat(cur)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && links > 0 {
				return "", contentErr(shown, "symlink target %s does not exist: %w", display(cur), ErrUnsafeSymlink)
			}
			return "", err
		}
		if n.kind == kindSymlink {
			links++
			if links > maxSymlinks {
				return "", contentErr(shown, "too many levels of symlinks: %w", ErrUnsafeSymlink)
			}
			target, err := b.t.readlink(cur, n)
			if err != nil {
				return "", fmt.Errorf("read symlink %s: %w", display(cur), err)
			}
			if target == "" || strings.ContainsRune(target, 0) {
				return "", contentErr(shown, "invalid symlink target %q: %w", target, ErrUnsafeSymlink)
			}
			if strings.HasPrefix(target, "/") || strings.HasPrefix(target, `\`) || (len(target) > 1 && target[1] == ':') {
				return "", contentErr(shown, "symlink target %q is absolute: %w", target, ErrUnsafeSymlink)
			}
			if escapes(done, target) {
				return "", contentErr(shown, "symlink target %q leads outside the repository: %w", target, ErrUnsafeSymlink)
			}
			todo = append(strings.Split(target, "/"), todo...)
			continue
		}
		if len(todo) > 0 && n.kind != kindDir {
			// A later element follows a file: the path does not exist.
			return "", fmt.Errorf("%s: %w", display(cur), fs.ErrNotExist)
		}
		done = append(done, elem)
	}
	return strings.Join(done, "/"), nil
}

// escapes reports whether target, relative to the directory dir, climbs
// above the repository root.
func escapes(dir []string, target string) bool {
	depth := len(dir)
	for _, elem := range strings.Split(target, "/") {
		switch elem {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return true
			}
		default:
			depth++
		}
	}
	return false
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// validName reports whether a single tree entry name is a plain name.
func validName(name string) bool {
	return name != "" && name != "." && name != ".." &&
		!strings.ContainsAny(name, "/\x00")
}

// bytesText formats a size for people: "1 MiB", "1536 bytes".
func bytesText(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	default:
		return strconv.FormatInt(n, 10) + " bytes"
	}
}

// dirDigestPrefix starts the Commit of a directory source.
const dirDigestPrefix = "dir:sha256:"

// digest returns "dir:sha256:<hex>" over the sorted paths and contents of m.
// Each file contributes its path, a NUL, its length in decimal, a NUL and
// its content, so no two different trees hash the same input.
func digest(m *memFS) string {
	h := sha256.New()
	for _, name := range m.sortedFiles() {
		f := m.files[name]
		h.Write([]byte(name))
		h.Write([]byte{0})
		h.Write([]byte(strconv.Itoa(len(f.data))))
		h.Write([]byte{0})
		h.Write(f.data)
	}
	return dirDigestPrefix + hex.EncodeToString(h.Sum(nil))
}

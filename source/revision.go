package source

import (
	"bytes"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"
)

// Revision is an immutable snapshot of one commit (or of a directory at one
// moment). Its files are held in memory, so nothing a later fetch or an edit
// on disk does changes what a reader of Files sees.
type Revision struct {
	// Commit is the full commit hash, or "dir:sha256:<hex>" for a directory
	// source: a digest over the sorted paths and contents of Files.
	Commit string
	// Ref is what was resolved: a full ref name such as "refs/heads/main" or
	// "refs/tags/v1.2.0", the commit hash when Options.Ref was a hash, "HEAD"
	// for a detached HEAD of a local repository, and "" for a directory.
	Ref string
	// URL is the repository for display, without user info.
	URL string
	// Path is the subdirectory Files is rooted at ("" for the root).
	Path string
	// Time is the committer time; for a directory source, when the snapshot
	// was taken.
	Time time.Time
	// Message is the commit message ("" for a directory source).
	Message string
	// Author is "Name <email>" of the commit's author ("" for a directory
	// source).
	Author string
	// Files holds the files under Path, read-only. It implements
	// fs.ReadFileFS, fs.ReadDirFS and fs.StatFS.
	Files fs.FS
}

// ShortCommit returns the first 12 hex digits of a commit hash, or the
// first 12 of the digest for a directory source ("dir:" + 12 digits).
func (r *Revision) ShortCommit() string { return ShortCommit(r.Commit) }

// ShortCommit shortens a commit as berth prints it: the first 12 hex
// digits of a hash, "dir:" and 12 digits of a directory digest, and
// anything else (a name, a shorter hash) as it is.
func ShortCommit(c string) string {
	if rest, ok := strings.CutPrefix(c, dirDigestPrefix); ok {
		if len(rest) > 12 {
			rest = rest[:12]
		}
		return "dir:" + rest
	}
	if len(c) > 12 && isHex(c) {
		return c[:12]
	}
	return c
}

// String formats r as "<url>[//<path>]@<short commit>".
func (r *Revision) String() string {
	s := r.URL
	if r.Path != "" {
		s += "//" + r.Path
	}
	return s + "@" + r.ShortCommit()
}

// memFS is an immutable in-memory file tree. Directory "." always exists.
type memFS struct {
	files   map[string]*memFile
	dirs    map[string][]fs.DirEntry // sorted by name
	modTime time.Time
}

type memFile struct {
	name string // base name
	data []byte
	mode fs.FileMode
	mod  time.Time
}

func newMemFS(mod time.Time) *memFS {
	return &memFS{
		files:   map[string]*memFile{},
		dirs:    map[string][]fs.DirEntry{".": nil},
		modTime: mod,
	}
}

// add records a file at the clean slash path name, creating parents.
func (m *memFS) add(name string, data []byte, mode fs.FileMode) {
	f := &memFile{name: path.Base(name), data: data, mode: mode &^ fs.ModeType, mod: m.modTime}
	m.files[name] = f
	m.addEntry(path.Dir(name), fileInfo{f})
}

func (m *memFS) addDir(name string) {
	if _, ok := m.dirs[name]; ok || name == "." {
		return
	}
	m.dirs[name] = nil
	m.addEntry(path.Dir(name), dirInfo{name: path.Base(name), mod: m.modTime})
}

func (m *memFS) addEntry(dir string, e fs.FileInfo) {
	m.addDir(dir)
	m.dirs[dir] = append(m.dirs[dir], fs.FileInfoToDirEntry(e))
}

// seal sorts directory listings; m must not change afterwards.
func (m *memFS) seal() {
	for _, ents := range m.dirs {
		slices.SortFunc(ents, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	}
}

// sortedFiles returns the file paths in lexical order.
func (m *memFS) sortedFiles() []string {
	names := make([]string, 0, len(m.files))
	for n := range m.files {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func (m *memFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if f, ok := m.files[name]; ok {
		return &openFile{f: f, r: bytes.NewReader(f.data)}, nil
	}
	if ents, ok := m.dirs[name]; ok {
		return &openDir{info: dirInfo{name: path.Base(name), mod: m.modTime}, ents: ents}, nil
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

// ReadFile returns a copy of the named file's content.
func (m *memFS) ReadFile(name string) ([]byte, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: fs.ErrInvalid}
	}
	if f, ok := m.files[name]; ok {
		return slices.Clone(f.data), nil
	}
	if _, ok := m.dirs[name]; ok {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: errIsDir}
	}
	return nil, &fs.PathError{Op: "readfile", Path: name, Err: fs.ErrNotExist}
}

// ReadDir returns the entries of the named directory, sorted by name.
func (m *memFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrInvalid}
	}
	if ents, ok := m.dirs[name]; ok {
		return slices.Clone(ents), nil
	}
	if _, ok := m.files[name]; ok {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errNotDir}
	}
	return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
}

// Stat describes the named file or directory.
func (m *memFS) Stat(name string) (fs.FileInfo, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrInvalid}
	}
	if f, ok := m.files[name]; ok {
		return fileInfo{f}, nil
	}
	if _, ok := m.dirs[name]; ok {
		return dirInfo{name: path.Base(name), mod: m.modTime}, nil
	}
	return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
}

type pathErr string

func (e pathErr) Error() string { return string(e) }

const (
	errIsDir  = pathErr("is a directory")
	errNotDir = pathErr("not a directory")
)

type fileInfo struct{ f *memFile }

func (i fileInfo) Name() string       { return i.f.name }
func (i fileInfo) Size() int64        { return int64(len(i.f.data)) }
func (i fileInfo) Mode() fs.FileMode  { return i.f.mode }
func (i fileInfo) ModTime() time.Time { return i.f.mod }
func (i fileInfo) IsDir() bool        { return false }
func (i fileInfo) Sys() any           { return nil }

type dirInfo struct {
	name string
	mod  time.Time
}

func (i dirInfo) Name() string       { return i.name }
func (i dirInfo) Size() int64        { return 0 }
func (i dirInfo) Mode() fs.FileMode  { return fs.ModeDir | 0o555 }
func (i dirInfo) ModTime() time.Time { return i.mod }
func (i dirInfo) IsDir() bool        { return true }
func (i dirInfo) Sys() any           { return nil }

// openFile is an open regular file; it reads, seeks and reads at offsets.
type openFile struct {
	f *memFile
	r *bytes.Reader
}

func (o *openFile) Stat() (fs.FileInfo, error) { return fileInfo{o.f}, nil }
func (o *openFile) Read(p []byte) (int, error) { return o.r.Read(p) }
func (o *openFile) ReadAt(p []byte, off int64) (int, error) {
	return o.r.ReadAt(p, off)
}
func (o *openFile) Seek(off int64, whence int) (int64, error) { return o.r.Seek(off, whence) }
func (o *openFile) Close() error                              { return nil }

// openDir is an open directory.
type openDir struct {
	info dirInfo
	ents []fs.DirEntry
	off  int
}

func (d *openDir) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *openDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.name, Err: errIsDir}
}
func (d *openDir) Close() error { return nil }

func (d *openDir) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.ents[d.off:]
	if n <= 0 {
		d.off = len(d.ents)
		return slices.Clone(rest), nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	if n > len(rest) {
		n = len(rest)
	}
	d.off += n
	return slices.Clone(rest[:n]), nil
}

var (
	_ fs.ReadFileFS  = (*memFS)(nil)
	_ fs.ReadDirFS   = (*memFS)(nil)
	_ fs.StatFS      = (*memFS)(nil)
	_ fs.ReadDirFile = (*openDir)(nil)
	_ io.ReaderAt    = (*openFile)(nil)
	_ io.Seeker      = (*openFile)(nil)
)

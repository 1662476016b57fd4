package source

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
)

// diskTree reads a directory through an os.Root, which the kernel keeps
// from leaving the directory even if the tree changes while it is read.
type diskTree struct {
	root *os.Root
}

func osName(name string) string {
	if name == "" {
		return "."
	}
	return name
}

func modeNode(name string, m fs.FileMode) node {
	n := node{name: name}
	switch {
	case m.IsDir():
		n.kind = kindDir
	case m.Type() == fs.ModeSymlink:
		n.kind = kindSymlink
	case m.IsRegular():
		n.kind = kindFile
		n.exec = m.Perm()&0o111 != 0
	default:
		n.kind = kindOther
	}
	return n
}

func (d *diskTree) lstat(name string) (node, error) {
	fi, err := d.root.Lstat(osName(name))
	if err != nil {
		return node{}, err
	}
	return modeNode(fi.Name(), fi.Mode()), nil
}

func (d *diskTree) readDir(name string, max int) ([]node, error) {
	f, err := d.root.Open(osName(name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Read one more than max: a huge directory is refused without
	// listing it whole.
	ents, err := f.ReadDir(max + 1)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if len(ents) > max {
		return nil, errTooManyEntries
	}
	slices.SortFunc(ents, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	nodes := make([]node, 0, len(ents))
	for _, e := range ents {
		m := e.Type()
		if m.IsRegular() {
			fi, err := e.Info()
			if err != nil {
				return nil, err
			}
			m = fi.Mode()
		}
		nodes = append(nodes, modeNode(e.Name(), m))
	}
	return nodes, nil
}

func (d *diskTree) readlink(name string, _ node) (string, error) {
	return d.root.Readlink(osName(name))
}

func (d *diskTree) readFile(name string, _ node, limit int64) ([]byte, error) {
	f, err := d.root.Open(osName(name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s changed while being read", display(name))
	}
	if fi.Size() > limit {
		return nil, errTooLarge{size: fi.Size()}
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, errTooLarge{}
	}
	return data, nil
}

package source

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// maxLinkSize bounds a symlink's target as stored in a blob.
const maxLinkSize = 4096

// gitTree reads one commit's tree from a repository's object store. Entry
// names are looked up directly, not through go-git's path helpers, so the
// builder sees (and refuses) names such as "..".
type gitTree struct {
	repo *git.Repository
	dirs map[string]*object.Tree // "" is the root tree
}

func newGitTree(repo *git.Repository, root *object.Tree) *gitTree {
	return &gitTree{repo: repo, dirs: map[string]*object.Tree{"": root}}
}

// dir returns the tree object of the symlink-free directory name.
func (g *gitTree) dir(name string) (*object.Tree, error) {
	if t, ok := g.dirs[name]; ok {
		return t, nil
	}
	parent, base := splitPath(name)
	pt, err := g.dir(parent)
	if err != nil {
		return nil, err
	}
	e := findEntry(pt, base)
	if e == nil {
		return nil, fmt.Errorf("%s: %w", display(name), fs.ErrNotExist)
	}
	if e.Mode != filemode.Dir {
		return nil, fmt.Errorf("%s: %w", display(name), errNotDir)
	}
	t, err := g.repo.TreeObject(e.Hash)
	if err != nil {
		return nil, fmt.Errorf("read tree %s: %w", display(name), err)
	}
	g.dirs[name] = t
	return t, nil
}

func splitPath(name string) (dir, base string) {
	dir, base = path.Split(name)
	if dir != "" {
		dir = dir[:len(dir)-1]
	}
	return dir, base
}

func findEntry(t *object.Tree, name string) *object.TreeEntry {
	for i := range t.Entries {
		if t.Entries[i].Name == name {
			return &t.Entries[i]
		}
	}
	return nil
}

func entryNode(e *object.TreeEntry) node {
	n := node{name: e.Name, id: e.Hash}
	switch e.Mode {
	case filemode.Dir:
		n.kind = kindDir
	case filemode.Regular, filemode.Deprecated:
		n.kind = kindFile
	case filemode.Executable:
		n.kind = kindFile
		n.exec = true
	case filemode.Symlink:
		n.kind = kindSymlink
	case filemode.Submodule:
		n.kind = kindSubmodule
	default:
		n.kind = kindOther
	}
	return n
}

func (g *gitTree) lstat(name string) (node, error) {
	if name == "" {
		return node{kind: kindDir}, nil
	}
	parent, base := splitPath(name)
	pt, err := g.dir(parent)
	if err != nil {
		return node{}, err
	}
	e := findEntry(pt, base)
	if e == nil {
		return node{}, fmt.Errorf("%s: %w", display(name), fs.ErrNotExist)
	}
	return entryNode(e), nil
}

func (g *gitTree) readDir(name string, max int) ([]node, error) {
	t, err := g.dir(name)
	if err != nil {
		return nil, err
	}
	if len(t.Entries) > max {
		return nil, errTooManyEntries
	}
	nodes := make([]node, len(t.Entries))
	for i := range t.Entries {
		nodes[i] = entryNode(&t.Entries[i])
	}
	return nodes, nil
}

func (g *gitTree) readlink(name string, n node) (string, error) {
	data, err := g.readBlob(n, maxLinkSize)
	if err != nil {
		var tl errTooLarge
		if errors.As(err, &tl) {
			return "", fmt.Errorf("symlink target longer than %d bytes", maxLinkSize)
		}
		return "", err
	}
	return string(data), nil
}

func (g *gitTree) readFile(name string, n node, limit int64) ([]byte, error) {
	return g.readBlob(n, limit)
}

func (g *gitTree) readBlob(n node, limit int64) ([]byte, error) {
	h, ok := n.id.(plumbing.Hash)
	if !ok {
		return nil, errors.New("no blob for entry")
	}
	b, err := g.repo.BlobObject(h)
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", h, err)
	}
	if b.Size > limit {
		return nil, errTooLarge{size: b.Size}
	}
	r, err := b.Reader()
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", h, err)
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", h, err)
	}
	if int64(len(data)) > limit {
		return nil, errTooLarge{size: b.Size}
	}
	return data, nil
}

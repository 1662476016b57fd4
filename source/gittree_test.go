package source

import (
	"errors"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/memory"
)

// craftTree stores a tree with the given entries (names unchecked, as a
// hostile repository could hold them) in repo.
func craftTree(t *testing.T, repo *git.Repository, entries []object.TreeEntry) *object.Tree {
	t.Helper()
	tree := &object.Tree{Entries: entries}
	obj := repo.Storer.NewEncodedObject()
	if err := tree.Encode(obj); err != nil {
		t.Fatal(err)
	}
	h, err := repo.Storer.SetEncodedObject(obj)
	if err != nil {
		t.Fatal(err)
	}
	out, err := repo.TreeObject(h)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func storeBlob(t *testing.T, repo *git.Repository, content string) plumbing.Hash {
	t.Helper()
	obj := repo.Storer.NewEncodedObject()
	obj.SetType(plumbing.BlobObject)
	w, err := obj.Writer()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(content)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	h, err := repo.Storer.SetEncodedObject(obj)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestGitTreeHostileEntries(t *testing.T) {
	repo, err := git.Init(memory.NewStorage(), nil)
	if err != nil {
		t.Fatal(err)
	}
	blob := storeBlob(t, repo, "x")
	link := storeBlob(t, repo, "../../outside")
	sub := craftTree(t, repo, []object.TreeEntry{{Name: "f.yaml", Mode: filemode.Regular, Hash: blob}})
	lim := limits{maxFile: 1 << 20, maxTotal: 1 << 30, maxFiles: 100, maxDepth: 64, maxEntries: 100}
	noWarn := func(string, ...any) {}
	for _, tc := range []struct {
		name    string
		entries []object.TreeEntry
		wantErr error
	}{
		{"dot-dot", []object.TreeEntry{{Name: "..", Mode: filemode.Dir, Hash: sub.Hash}}, ErrUnsafePath},
		{"dot", []object.TreeEntry{{Name: ".", Mode: filemode.Regular, Hash: blob}}, ErrUnsafePath},
		{"slash", []object.TreeEntry{{Name: "a/../../b", Mode: filemode.Regular, Hash: blob}}, ErrUnsafePath},
		{"escaping symlink", []object.TreeEntry{{Name: "l", Mode: filemode.Symlink, Hash: link}}, ErrUnsafeSymlink},
		{".git skipped", []object.TreeEntry{{Name: ".GIT", Mode: filemode.Dir, Hash: sub.Hash}, {Name: "ok", Mode: filemode.Regular, Hash: blob}}, nil},
		{"submodule skipped", []object.TreeEntry{{Name: "mod", Mode: filemode.Submodule, Hash: blob}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := craftTree(t, repo, tc.entries)
			m, err := snapshot(newGitTree(repo, root), "", lim, time.Time{}, noWarn)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				if len(m.files) > 1 {
					t.Errorf("files = %v", m.sortedFiles())
				}
				return
			}
			var ce *ContentError
			if !errors.Is(err, tc.wantErr) || !errors.As(err, &ce) {
				t.Fatalf("error %v, want a ContentError wrapping %v", err, tc.wantErr)
			}
		})
	}
}

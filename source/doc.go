// Package source reads the repository berth deploys from and hands out
// immutable snapshots of it.
//
// A Source is opened from Options (URL, Ref, Path, CacheDir, Auth, limits)
// and Fetch returns a *Revision: a commit hash, what the ref resolved to,
// and the files under Path as an in-memory fs.FS, plus whether the commit
// differs from the previous Fetch.
//
// Three kinds of repository are read:
//
//   - Remote repositories (https://, http://, ssh://, scp-style
//     git@host:org/repo.git, git://) are cloned on the first Fetch into a
//     bare repository in Options.CacheDir and fetched into it later; every
//     branch and tag is fetched with force, so a force-pushed branch wins,
//     and deleted ones are pruned. An empty Ref follows the branch the
//     remote's HEAD points at (main, then master, when the remote does not
//     say). go-git's NoErrAlreadyUpToDate is not an error here. An flock on
//     CacheDir/lock keeps two processes from fetching into one cache.
//   - Local Git repositories (a path, or a file:// URL, naming a bare
//     repository or the top of a working tree) are read in place through the
//     object store: the committed HEAD or Ref, never uncommitted edits
//     (unless Options.ForceDir asks for the files on disk). No git binary
//     is needed.
//   - Any other local directory is a directory source. Its Revision.Commit is
//     "dir:sha256:<hex>", a digest over the sorted paths and contents, so it
//     changes exactly when a file under Path changes.
//
// Invariants kept:
//
//   - A Revision never changes: its files are copied into memory, and
//     neither a later fetch nor an edit on disk is seen through it.
//   - Repository content stays inside the repository. A symlink that is
//     absolute, climbs out of the repository root, dangles or loops is an
//     error naming its path ("./apps/x.yaml: ..."), as is a tree entry named
//     "." or ".." or containing a slash; symlinks that stay inside resolve to
//     their target's content (directories included). ".git" entries are
//     skipped, Git submodules skipped with a warning.
//   - Content is bounded: Options.MaxFileSize per file (1 MiB by default,
//     checked by size before reading), MaxTotalSize and MaxFiles per
//     snapshot (directories are counted apart against MaxFiles), MaxDepth
//     for nested directories and MaxDirEntries per directory (checked
//     before the directory is listed whole).
//   - Credentials never appear in a Revision, an error or a log line: URLs
//     are shown without user info and every error is scrubbed of the
//     passwords and tokens the Source knows.
//   - SSH host keys are always checked against known_hosts.
//
// Errors that a new commit or new options must fix wrap a *ContentError,
// ErrRefNotFound or ErrPathNotFound; anything else (network, server,
// authentication) may be worth retrying.
package source

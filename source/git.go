package source

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/go-git/go-git/v5/storage/memory"
	"github.com/hashicorp/go-hclog"
)

const (
	remoteName = "origin"
	// customRefPrefix holds refs outside refs/heads and refs/tags that
	// Options.Ref asked for (refs/pull/1/head is fetched to
	// refs/berth/pull/1/head).
	customRefPrefix = "refs/berth/"
	remoteBranches  = "refs/remotes/" + remoteName + "/"
	remoteHEAD      = plumbing.ReferenceName(remoteBranches + "HEAD")
)

// gitBackend reads commits from a repository: a cache it fetches a remote
// into, or a local repository it reads in place.
type gitBackend struct {
	repo     *git.Repository
	remote   bool // fetch from a remote before resolving
	url      string
	ref      string // the ref Options.Ref starts from
	suffix   string // and the ancestry after it (~2, ^), as git reads it
	auth     transport.AuthMethod
	refspecs []config.RefSpec
	lockPath string // "" for in-memory caches and local repositories
	log      hclog.Logger
	mirrors  []mirror // fallback URLs, tried in order
	shallow  bool     // fetch only the followed branch, depth 1
}

// refspecsFor returns what a fetch asks for: every branch and tag, forced
// so that a force-pushed branch or a moved tag wins, and a custom ref when
// Options.Ref names one.
func refspecsFor(ref string) []config.RefSpec {
	specs := []config.RefSpec{
		config.RefSpec("+refs/heads/*:" + remoteBranches + "*"),
		"+refs/tags/*:refs/tags/*",
	}
	if strings.HasPrefix(ref, "refs/") && !strings.HasPrefix(ref, "refs/heads/") && !strings.HasPrefix(ref, "refs/tags/") {
		specs = append(specs, config.RefSpec("+"+ref+":"+customRefPrefix+strings.TrimPrefix(ref, "refs/")))
	}
	return specs
}

// openRemote prepares the cache of a remote repository: a bare repository
// in cacheDir/repo.git (created on first use), or memory when cacheDir is
// "". It does no network I/O.
func openRemote(ctx context.Context, loc *location, o *Options, log hclog.Logger) (*gitBackend, error) {
	auth, err := authFor(loc, o.Auth, log)
	if err != nil {
		return nil, err
	}
	ref, suffix := splitRevision(o.Ref)
	b := &gitBackend{
		remote:   true,
		url:      loc.remote,
		ref:      ref,
		suffix:   suffix,
		auth:     auth,
		refspecs: refspecsFor(ref),
		log:      log,
		shallow:  o.Shallow,
	}
	if b.mirrors, err = openMirrors(o, log); err != nil {
		return nil, err
	}
	for _, s := range b.refspecs {
		if err := s.Validate(); err != nil {
			return nil, fmt.Errorf("ref %q: %w", o.Ref, err)
		}
	}
	if o.CacheDir == "" {
		b.repo, err = git.Init(memory.NewStorage(), nil)
		if err != nil {
			return nil, err
		}
	} else {
		if err := os.MkdirAll(o.CacheDir, 0o700); err != nil {
			return nil, fmt.Errorf("create cache: %w", err)
		}
		b.lockPath = filepath.Join(o.CacheDir, "lock")
		unlock, err := lockFile(ctx, b.lockPath)
		if err != nil {
			return nil, err
		}
		defer unlock()
		b.repo, err = openCache(filepath.Join(o.CacheDir, "repo.git"), log)
		if err != nil {
			return nil, err
		}
	}
	if err := b.ensureRemote(); err != nil {
		return nil, err
	}
	return b, nil
}

// openCache opens the bare cache repository, creating it when missing and
// recreating it when it cannot be opened (a power cut during the first
// clone, say).
func openCache(dir string, log hclog.Logger) (*git.Repository, error) {
	repo, err := git.PlainOpen(dir)
	if err == nil {
		log.Debug("using git cache", "dir", dir)
		return repo, nil
	}
	if !errors.Is(err, git.ErrRepositoryNotExists) {
		log.Warn("git cache unusable, recreating it", "dir", dir, "error", err)
		if err := os.RemoveAll(dir); err != nil {
			return nil, fmt.Errorf("remove broken cache: %w", err)
		}
	}
	repo, err = git.PlainInit(dir, true)
	if err != nil {
		return nil, fmt.Errorf("create cache: %w", err)
	}
	log.Debug("created git cache", "dir", dir)
	return repo, nil
}

// ensureRemote points the remote "origin" of the cache at b.url.
func (b *gitBackend) ensureRemote() error {
	want := &config.RemoteConfig{Name: remoteName, URLs: []string{b.url}, Fetch: b.refspecs}
	r, err := b.repo.Remote(remoteName)
	if err == nil {
		c := r.Config()
		if len(c.URLs) == 1 && c.URLs[0] == b.url && sameSpecs(c.Fetch, b.refspecs) {
			return nil
		}
		if err := b.repo.DeleteRemote(remoteName); err != nil {
			return fmt.Errorf("update cache remote: %w", err)
		}
	} else if !errors.Is(err, git.ErrRemoteNotFound) {
		return fmt.Errorf("read cache remote: %w", err)
	}
	if _, err := b.repo.CreateRemote(want); err != nil {
		return fmt.Errorf("configure cache remote: %w", err)
	}
	return nil
}

func sameSpecs(a, b []config.RefSpec) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// openLocal opens a local repository in place (bare, or the .git of a
// working tree; worktrees made by git worktree are followed).
func openLocal(dir string, o *Options, log hclog.Logger) (*gitBackend, error) {
	repo, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{EnableDotGitCommonDir: true})
	if err != nil {
		return nil, fmt.Errorf("open repository: %w", err)
	}
	ref, suffix := splitRevision(o.Ref)
	return &gitBackend{repo: repo, url: dir, ref: ref, suffix: suffix, log: log}, nil
}

// update fetches (for a remote) and resolves the ref to a commit. It
// returns the commit and the full name of what was resolved.
func (b *gitBackend) update(ctx context.Context) (*object.Commit, string, error) {
	if b.lockPath != "" {
		unlock, err := lockFile(ctx, b.lockPath)
		if err != nil {
			return nil, "", err
		}
		defer unlock()
	}
	if b.remote {
		if err := b.fetchWithMirrors(ctx); err != nil {
			return nil, "", err
		}
	}
	return b.resolve(b.ref + b.suffix)
}

func (b *gitBackend) fetch(ctx context.Context) error {
	r, err := b.repo.Remote(remoteName)
	if err != nil {
		return fmt.Errorf("read cache remote: %w", err)
	}
	return b.fetchRemote(ctx, r)
}

// fetchRemote fetches from r into the cache's refs.
func (b *gitBackend) fetchRemote(ctx context.Context, r *git.Remote) error {
	var err error
	var head *plumbing.Reference
	if b.ref == "" || b.ref == "HEAD" {
		if head, err = b.remoteHEAD(ctx, r); err != nil {
			return err
		}
	}
	specs, depth := b.refspecs, 0
	if b.shallow {
		specs, depth = b.shallowSpecs(head), 1
	}
	err = r.FetchContext(ctx, &git.FetchOptions{
		RemoteName: remoteName,
		RefSpecs:   specs,
		Depth:      depth,
		Auth:       b.auth,
		Tags:       git.NoTags, // the refspecs fetch every tag already
		Force:      true,
		Prune:      true,
	})
	switch {
	case err == nil:
		b.log.Debug("fetched")
	case errors.Is(err, git.NoErrAlreadyUpToDate):
		b.log.Debug("already up to date")
	default:
		return classify(err)
	}
	if head != nil {
		// Recorded after the fetch, whose pruning would remove it.
		if err := b.repo.Storer.SetReference(head); err != nil {
			return fmt.Errorf("record remote HEAD: %w", err)
		}
	}
	return nil
}

// remoteHEAD asks the remote which branch its HEAD points at and returns
// the symbolic ref refs/remotes/origin/HEAD to record, or nil when the
// remote does not say.
func (b *gitBackend) remoteHEAD(ctx context.Context, r *git.Remote) (*plumbing.Reference, error) {
	refs, err := r.ListContext(ctx, &git.ListOptions{Auth: b.auth})
	if err != nil {
		return nil, classify(err)
	}
	for _, ref := range refs {
		if ref.Name() != plumbing.HEAD || ref.Type() != plumbing.SymbolicReference {
			continue
		}
		if branch, ok := strings.CutPrefix(ref.Target().String(), "refs/heads/"); ok {
			return plumbing.NewSymbolicReference(remoteHEAD, plumbing.ReferenceName(remoteBranches+branch)), nil
		}
	}
	// resolve falls back to main, then master.
	b.log.Debug("remote does not advertise its HEAD")
	return nil, nil
}

// classify maps go-git's transport errors onto the package's errors.
func classify(err error) error {
	switch {
	case errors.Is(err, transport.ErrEmptyRemoteRepository):
		return fmt.Errorf("%w (%v)", ErrEmptyRepository, err)
	case errors.Is(err, transport.ErrAuthenticationRequired),
		errors.Is(err, transport.ErrAuthorizationFailed):
		return fmt.Errorf("%w: %w", ErrAuth, err)
	case strings.Contains(err.Error(), "ssh: unable to authenticate"):
		// golang.org/x/crypto/ssh has no error value for this.
		return fmt.Errorf("%w: %w", ErrAuth, err)
	}
	return err
}

// candidate is a ref to try: local is its name in the repository read,
// shown the name reported in Revision.Ref.
type candidate struct {
	local plumbing.ReferenceName
	shown string
}

// candidates lists, in order, the refs that Options.Ref may mean.
func (b *gitBackend) candidates(ref string) []candidate {
	if !b.remote {
		switch {
		case ref == "" || ref == "HEAD":
			return []candidate{{plumbing.HEAD, "HEAD"}}
		case strings.HasPrefix(ref, "refs/"):
			return []candidate{{plumbing.ReferenceName(ref), ref}}
		}
		return []candidate{
			{plumbing.ReferenceName("refs/tags/" + ref), "refs/tags/" + ref},
			{plumbing.ReferenceName("refs/heads/" + ref), "refs/heads/" + ref},
			{plumbing.ReferenceName("refs/remotes/" + ref), "refs/remotes/" + ref},
		}
	}
	branch := func(name string) candidate {
		return candidate{plumbing.ReferenceName(remoteBranches + name), "refs/heads/" + name}
	}
	switch {
	case ref == "" || ref == "HEAD":
		var cs []candidate
		if sym, err := b.repo.Storer.Reference(remoteHEAD); err == nil && sym.Type() == plumbing.SymbolicReference {
			cs = append(cs, branch(strings.TrimPrefix(sym.Target().String(), remoteBranches)))
		}
		return append(cs, branch("main"), branch("master"))
	case strings.HasPrefix(ref, "refs/heads/"):
		return []candidate{branch(strings.TrimPrefix(ref, "refs/heads/"))}
	case strings.HasPrefix(ref, "refs/tags/"):
		return []candidate{{plumbing.ReferenceName(ref), ref}}
	case strings.HasPrefix(ref, "refs/"):
		return []candidate{{plumbing.ReferenceName(customRefPrefix + strings.TrimPrefix(ref, "refs/")), ref}}
	case strings.HasPrefix(ref, remoteName+"/"):
		// origin/main: the remote's branch, which is what the cache holds.
		return []candidate{branch(strings.TrimPrefix(ref, remoteName+"/"))}
	}
	return []candidate{{plumbing.ReferenceName("refs/tags/" + ref), "refs/tags/" + ref}, branch(ref)}
}

// revisionSuffix is the ancestry part of a revision as git rev-parse reads
// it: any sequence of ~, ~N, ^, ^N after a ref or commit (HEAD~2, main^,
// v1.2^2~1).
var revisionSuffix = regexp.MustCompile(`((?:~[0-9]*|\^[0-9]*)+)$`)

// splitRevision splits rev into the ref or commit it starts from and the
// ancestry after it.
func splitRevision(rev string) (ref, suffix string) {
	if i := revisionSuffix.FindStringIndex(rev); i != nil && i[0] > 0 {
		return rev[:i[0]], rev[i[0]:]
	}
	return rev, ""
}

// resolve turns rev into a commit as git rev-parse does: a ref name (tags
// before branches; origin/NAME for a branch of the remote), or a full or
// abbreviated commit hash, then the ancestry after it (HEAD~1, main^2),
// walked by go-git's ResolveRevision. The ref reported is rev as given
// when it has an ancestry part.
//
// A semantic version range (~1.4, ^1.2, ">=1.0 ~2") is read as a whole:
// it has no ancestry unless what comes before the ~ or ^ is a plain ref.
func (b *gitBackend) resolve(rev string) (*object.Commit, string, error) {
	ref, suffix := splitRevision(rev)
	if c, ok := semverRange(rev); ok {
		if _, baseIsRange := semverRange(ref); baseIsRange || suffix == "" {
			return b.resolveRange(rev, c)
		}
	}
	commit, shown, err := b.resolveRef(ref)
	if err != nil || suffix == "" {
		return commit, shown, err
	}
	h, err := b.repo.ResolveRevision(plumbing.Revision(commit.Hash.String() + suffix))
	if err != nil {
		return nil, "", fmt.Errorf("%s: %v: %w", rev, err, ErrRefNotFound)
	}
	if commit, err = b.repo.CommitObject(*h); err != nil {
		return nil, "", fmt.Errorf("%s: %w", rev, err)
	}
	return commit, rev, nil
}

// resolveRef turns a ref name or a full or abbreviated commit hash into a
// commit.
func (b *gitBackend) resolveRef(ref string) (*object.Commit, string, error) {
	for _, c := range b.candidates(ref) {
		r, err := b.repo.Reference(c.local, true)
		if errors.Is(err, plumbing.ErrReferenceNotFound) {
			continue
		}
		if err != nil {
			return nil, "", fmt.Errorf("read ref %s: %w", c.shown, err)
		}
		if c.local == plumbing.HEAD {
			if head, err := b.repo.Reference(plumbing.HEAD, false); err == nil && head.Type() == plumbing.SymbolicReference {
				c.shown = head.Target().String()
			}
		}
		commit, err := b.peel(r.Hash())
		if err != nil {
			return nil, "", fmt.Errorf("ref %s: %w", c.shown, err)
		}
		return commit, c.shown, nil
	}
	if isHex(ref) && len(ref) >= 4 {
		h, err := b.repo.ResolveRevision(plumbing.Revision(ref))
		if err == nil {
			commit, err := b.repo.CommitObject(*h)
			if err == nil {
				return commit, ref, nil
			}
		}
		return nil, "", fmt.Errorf("commit %s is in no fetched branch or tag: %w", ref, ErrRefNotFound)
	}
	if ref == "" {
		return nil, "", fmt.Errorf("no default branch (HEAD, main or master): %w", ErrRefNotFound)
	}
	return nil, "", fmt.Errorf("%q is no branch, tag or commit: %w", ref, ErrRefNotFound)
}

// peel follows annotated tags to the commit they name.
func (b *gitBackend) peel(h plumbing.Hash) (*object.Commit, error) {
	for range 10 {
		tag, err := b.repo.TagObject(h)
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			break
		}
		if err != nil {
			return nil, err
		}
		if tag.TargetType != plumbing.CommitObject && tag.TargetType != plumbing.TagObject {
			return nil, fmt.Errorf("tag %s points to a %s, not a commit", tag.Name, tag.TargetType)
		}
		h = tag.Target
	}
	return b.repo.CommitObject(h)
}

func isHex(s string) bool {
	if s == "" || len(s) > 40 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// authFor builds go-git's auth method for the URL's transport.
func authFor(loc *location, a Auth, log hclog.Logger) (transport.AuthMethod, error) {
	switch loc.scheme {
	case "http", "https":
		if a.hasSSH() {
			log.Warn("ssh credentials ignored for an http(s) repository")
		}
		switch {
		case a.BearerToken != "":
			return &githttp.TokenAuth{Token: a.BearerToken}, nil
		case a.Username != "" || a.Password != "":
			user := a.Username
			if user == "" {
				user = "git"
			}
			return &githttp.BasicAuth{Username: user, Password: a.Password}, nil
		case loc.user != "" || loc.password != "":
			return &githttp.BasicAuth{Username: loc.user, Password: loc.password}, nil
		}
		return nil, nil
	case "ssh":
		if a.hasHTTP() {
			log.Warn("http credentials ignored for an ssh repository")
		}
		return sshAuth(loc, a)
	default:
		if a.hasHTTP() || a.hasSSH() {
			log.Warn("credentials ignored for a repository that takes none", "scheme", loc.scheme)
		}
		return nil, nil
	}
}

func sshAuth(loc *location, a Auth) (transport.AuthMethod, error) {
	user := a.SSHUser
	if user == "" {
		user = loc.user
	}
	if user == "" {
		user = "git"
	}
	var helper gitssh.HostKeyCallbackHelper
	if a.SSHKnownHostsFile != "" {
		db, err := gitssh.NewKnownHostsDb(a.SSHKnownHostsFile)
		if err != nil {
			return nil, fmt.Errorf("read known hosts: %w", err)
		}
		helper.HostKeyCallback = db.HostKeyCallback()
		if ep, err := transport.NewEndpoint(loc.remote); err == nil {
			port := ep.Port
			if port == 0 {
				port = 22
			}
			helper.HostKeyAlgorithms = db.HostKeyAlgorithms(net.JoinHostPort(ep.Host, fmt.Sprint(port)))
		}
	}
	if a.SSHKeyFile == "" {
		if a.SSHKnownHostsFile == "" {
			return nil, nil // go-git's default: the ssh agent and the default known_hosts
		}
		agent, err := gitssh.NewSSHAgentAuth(user)
		if err != nil {
			return nil, fmt.Errorf("ssh agent: %w", err)
		}
		agent.HostKeyCallbackHelper = helper
		return agent, nil
	}
	keys, err := gitssh.NewPublicKeysFromFile(user, a.SSHKeyFile, a.SSHKeyPassphrase)
	if err != nil {
		return nil, fmt.Errorf("read ssh key %s: %w", a.SSHKeyFile, err)
	}
	keys.HostKeyCallbackHelper = helper
	return keys, nil
}

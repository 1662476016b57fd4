package source

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"path/filepath"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// Default limits applied by Options.Validate.
const (
	// DefaultMaxFileSize is the largest file a snapshot accepts.
	DefaultMaxFileSize = 1 << 20
	// DefaultMaxTotalSize bounds the sum of all file sizes of a snapshot.
	DefaultMaxTotalSize = 64 << 20
	// DefaultMaxFiles bounds the number of files in a snapshot, and
	// apart the number of directories.
	DefaultMaxFiles = 10000
	// DefaultMaxDepth bounds how deep directories nest below the
	// snapshot's root.
	DefaultMaxDepth = 64
	// DefaultMaxDirEntries bounds the entries of one directory.
	DefaultMaxDirEntries = 10000
)

// Options says which repository, which ref and which subdirectory a Source
// reads. Like go-git's CloneOptions it is a plain struct; Validate checks it
// and fills the defaults, and Open calls Validate.
type Options struct {
	// URL is the repository: an https://, http://, ssh://, git:// or file://
	// URL, an scp-style address (git@host:org/repo.git), or a local path. A
	// local path to a Git repository (bare, or a working tree with .git) is
	// read through Git; any other local directory is a directory source.
	// User info in an http(s) URL is used as basic-auth credentials when Auth
	// has none, and is never shown.
	URL string
	// Ref is a branch, a tag, a full ref name (refs/heads/main, refs/pull/1/head)
	// or a full or abbreviated commit hash. A bare name is looked up as a tag
	// first, then as a branch, as git rev-parse does. Empty means the branch
	// the remote's HEAD points at (for a local repository, its HEAD). Ref must
	// be empty for a directory source. A semantic version range over tags
	// (">=1.2.0 <2.0.0", "~1.4", "1.x") resolves to the highest matching
	// tag, fetched anew each time. As with git rev-parse, origin/NAME is
	// the remote's branch NAME, and ~N and ^N after any of these walk to an
	// ancestor (HEAD~1, main^, v1.2~3).
	Ref string
	// Path is the subdirectory of the repository the snapshot is rooted at,
	// slash-separated and relative; "" or "." is the repository root.
	Path string
	// CacheDir is where a remote repository is cloned and later fetched
	// (a bare repository in CacheDir/repo.git, guarded by CacheDir/lock).
	// Empty keeps the clone in memory for the life of the Source. Unused for
	// local repositories and directories.
	CacheDir string
	// Auth holds credentials for remote repositories.
	Auth Auth
	// Mirrors are fallback URLs of the same remote repository, fetched
	// from in order when the URL cannot be reached (not when it refuses
	// the credentials or lacks the ref). Each gets the credentials its
	// transport takes.
	Mirrors []string
	// Shallow fetches only the branch the ref follows (the remote's
	// default branch when Ref is empty), one commit deep, for small
	// devices. It needs Ref to name a branch, or to be empty.
	Shallow bool
	// MaxFileSize is the largest file, in bytes, a snapshot accepts;
	// default DefaultMaxFileSize.
	MaxFileSize int64
	// MaxTotalSize bounds the sum of the file sizes of a snapshot;
	// default DefaultMaxTotalSize.
	MaxTotalSize int64
	// MaxFiles bounds the number of files in a snapshot; default
	// DefaultMaxFiles.
	MaxFiles int
	// MaxDepth bounds how deep directories nest below the snapshot's
	// root; default DefaultMaxDepth.
	MaxDepth int
	// MaxDirEntries bounds the entries of one directory, checked before
	// they are listed; default DefaultMaxDirEntries.
	MaxDirEntries int
	// ForceDir reads a local path as a directory source even when it is a
	// Git repository: the files on disk, uncommitted changes included,
	// instead of the committed HEAD (what "berth vet DIR" wants). It needs a
	// local path and no Ref.
	ForceDir bool
	// Logger receives the Source's logs; default a null logger.
	Logger hclog.Logger
}

// Auth holds the credentials for a remote repository. Its String method
// never shows a secret.
type Auth struct {
	// Username and Password are HTTP basic-auth credentials. A token that a
	// forge accepts as a password (GitHub, GitLab, Gitea) goes in Password;
	// Username then defaults to "git".
	Username string
	Password string
	// BearerToken is sent as "Authorization: Bearer <token>" over HTTP.
	BearerToken string
	// SSHKeyFile is a private key in PEM or OpenSSH format. Without it the
	// ssh transport asks the agent at SSH_AUTH_SOCK.
	SSHKeyFile string
	// SSHKeyPassphrase decrypts SSHKeyFile.
	SSHKeyPassphrase string
	// SSHKnownHostsFile lists the accepted host keys. Host keys are always
	// checked; without this file, SSH_KNOWN_HOSTS, ~/.ssh/known_hosts and
	// /etc/ssh/ssh_known_hosts are used.
	SSHKnownHostsFile string
	// SSHUser is the ssh login; default the user in the URL, else "git".
	SSHUser string
}

// String describes which credentials are set without showing them.
func (a Auth) String() string {
	var parts []string
	if a.Username != "" {
		parts = append(parts, "username="+a.Username)
	}
	if a.Password != "" {
		parts = append(parts, "password=<redacted>")
	}
	if a.BearerToken != "" {
		parts = append(parts, "bearer=<redacted>")
	}
	if a.SSHKeyFile != "" {
		parts = append(parts, "ssh-key="+a.SSHKeyFile)
	}
	if a.SSHKeyPassphrase != "" {
		parts = append(parts, "ssh-passphrase=<redacted>")
	}
	if a.SSHKnownHostsFile != "" {
		parts = append(parts, "known-hosts="+a.SSHKnownHostsFile)
	}
	if a.SSHUser != "" {
		parts = append(parts, "ssh-user="+a.SSHUser)
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// GoString is String, so %#v does not show secrets either.
func (a Auth) GoString() string { return a.String() }

func (a Auth) hasHTTP() bool {
	return a.Username != "" || a.Password != "" || a.BearerToken != ""
}

func (a Auth) hasSSH() bool {
	return a.SSHKeyFile != "" || a.SSHKeyPassphrase != "" || a.SSHKnownHostsFile != "" || a.SSHUser != ""
}

// Validate checks o and fills in defaults. It does no I/O.
func (o *Options) Validate() error {
	o.URL = strings.TrimSpace(o.URL)
	if o.URL == "" {
		return errors.New("source: no repository URL")
	}
	if _, err := parseLocation(o.URL); err != nil {
		return err
	}
	p, err := cleanPath(o.Path)
	if err != nil {
		return err
	}
	o.Path = p
	o.Ref = strings.TrimSpace(o.Ref)
	if o.MaxFileSize < 0 || o.MaxTotalSize < 0 || o.MaxFiles < 0 || o.MaxDepth < 0 || o.MaxDirEntries < 0 {
		return errors.New("source: negative size or file limit")
	}
	if o.MaxFileSize == 0 {
		o.MaxFileSize = DefaultMaxFileSize
	}
	if o.MaxTotalSize == 0 {
		o.MaxTotalSize = DefaultMaxTotalSize
	}
	if o.MaxFiles == 0 {
		o.MaxFiles = DefaultMaxFiles
	}
	if o.MaxDepth == 0 {
		o.MaxDepth = DefaultMaxDepth
	}
	if o.MaxDirEntries == 0 {
		o.MaxDirEntries = DefaultMaxDirEntries
	}
	if o.Auth.BearerToken != "" && (o.Auth.Username != "" || o.Auth.Password != "") {
		return errors.New("source: give either a bearer token or a username and password, not both")
	}
	if o.ForceDir {
		if loc, _ := parseLocation(o.URL); loc.kind != locLocal || loc.explicitFile {
			return errors.New("source: ForceDir needs a local directory path")
		}
		if o.Ref != "" {
			return fmt.Errorf("source: ref %q given with ForceDir", o.Ref)
		}
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	return nil
}

// cleanPath turns a --path value into a clean, slash-separated path relative
// to the repository root ("" for the root), rejecting absolute paths and "..".
func cleanPath(p string) (string, error) {
	orig := p
	p = strings.TrimSpace(filepath.ToSlash(p))
	if p == "" || p == "." {
		return "", nil
	}
	if strings.HasPrefix(p, "/") || filepath.IsAbs(orig) {
		return "", fmt.Errorf("source: path %q must be relative to the repository root", orig)
	}
	for _, elem := range strings.Split(p, "/") {
		if elem == ".." {
			return "", fmt.Errorf("source: path %q must not contain \"..\"", orig)
		}
		if strings.ContainsRune(elem, 0) {
			return "", fmt.Errorf("source: path %q contains a NUL byte", orig)
		}
	}
	p = path.Clean(p)
	if p == "." {
		return "", nil
	}
	return p, nil
}

// locationKind says how a URL is reached.
type locationKind int

const (
	locRemote locationKind = iota // http(s), ssh, git: fetched into a cache
	locLocal                      // a local path: a Git repository or a directory
)

// location is a parsed Options.URL.
type location struct {
	kind locationKind
	// scheme is "http", "https", "ssh", "git" or "file"/"" for local paths.
	scheme string
	// remote is the URL given to go-git: without credentials (an ssh URL
	// keeps its user name).
	remote string
	// display is the URL without any user info, safe to show.
	display string
	// user and password come from the URL's user info.
	user, password string
	// path is the local path (locLocal).
	path string
	// explicitFile is true for a file:// URL, which must be a Git repository.
	explicitFile bool
}

// parseLocation classifies a repository URL. It does no I/O: whether a local
// path is a Git repository is decided by Open.
func parseLocation(raw string) (*location, error) {
	if strings.Contains(raw, "://") {
		u, err := url.Parse(raw)
		if err != nil {
			// url.Error repeats the input, which may hold credentials.
			return nil, fmt.Errorf("source: invalid repository URL %q", redactUserinfo(raw))
		}
		loc := &location{scheme: strings.ToLower(u.Scheme)}
		if u.User != nil {
			loc.user = u.User.Username()
			loc.password, _ = u.User.Password()
		}
		bare := *u
		bare.User = nil
		loc.display = bare.String()
		switch loc.scheme {
		case "http", "https", "git":
			if u.Host == "" {
				return nil, fmt.Errorf("source: repository URL %q has no host", loc.display)
			}
			loc.kind = locRemote
			loc.remote = loc.display
		case "ssh":
			if u.Host == "" {
				return nil, fmt.Errorf("source: repository URL %q has no host", loc.display)
			}
			loc.kind = locRemote
			withUser := bare
			if loc.user != "" {
				withUser.User = url.User(loc.user)
			}
			loc.remote = withUser.String()
		case "file":
			if u.Host != "" && u.Host != "localhost" {
				return nil, fmt.Errorf("source: file URL %q names a host", loc.display)
			}
			if u.Path == "" || !strings.HasPrefix(u.Path, "/") {
				return nil, fmt.Errorf("source: file URL %q needs an absolute path", loc.display)
			}
			loc.kind = locLocal
			loc.path = filepath.Clean(filepath.FromSlash(u.Path))
			loc.explicitFile = true
			loc.display = "file://" + filepath.ToSlash(loc.path)
		default:
			return nil, fmt.Errorf("source: unsupported URL scheme %q in %q", u.Scheme, loc.display)
		}
		return loc, nil
	}
	if user, host, p, ok := splitSCP(raw); ok {
		loc := &location{kind: locRemote, scheme: "ssh", user: user}
		loc.display = host + ":" + p
		loc.remote = raw
		if user != "" {
			loc.remote = user + "@" + host + ":" + p
		}
		return loc, nil
	}
	return &location{kind: locLocal, path: raw, display: raw}, nil
}

// splitSCP recognises git's scp-like syntax, [user@]host:path, which git uses
// whenever a colon comes before the first slash.
func splitSCP(s string) (user, host, p string, ok bool) {
	colon := strings.IndexByte(s, ':')
	if colon <= 0 {
		return "", "", "", false
	}
	if slash := strings.IndexByte(s, '/'); slash >= 0 && slash < colon {
		return "", "", "", false
	}
	host, p = s[:colon], s[colon+1:]
	if at := strings.LastIndexByte(host, '@'); at >= 0 {
		user, host = host[:at], host[at+1:]
		if i := strings.IndexByte(user, ':'); i >= 0 {
			user = user[:i] // drop a password: ssh does not take one here
		}
	}
	if host == "" || p == "" {
		return "", "", "", false
	}
	return user, host, p, true
}

// DisplayURL returns the repository URL without user info, as Revision.URL
// shows it: a form safe to log or to hash into a cache directory name.
// Local paths are returned as given.
func DisplayURL(raw string) string {
	loc, err := parseLocation(strings.TrimSpace(raw))
	if err != nil {
		return redactUserinfo(strings.TrimSpace(raw))
	}
	return loc.display
}

// redactUserinfo removes anything between "://" and the last "@" before the
// host, for URLs that do not parse.
func redactUserinfo(s string) string {
	i := strings.Index(s, "://")
	if i < 0 {
		return s
	}
	rest := s[i+3:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	if at := strings.LastIndexByte(rest[:end], '@'); at >= 0 {
		return s[:i+3] + rest[at+1:]
	}
	return s
}

package source

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// Environment variables AuthFiles.Load reads when the matching file is not
// given. Credentials are never taken from command-line flags, which other
// users of the host can see.
const (
	EnvGitUsername = "BERTH_GIT_USERNAME"
	EnvGitPassword = "BERTH_GIT_PASSWORD"
	EnvGitToken    = "BERTH_GIT_TOKEN"
)

// AuthFiles names where credentials come from: files (mode 0600 is
// advised; a systemd credential works) or, failing those, the environment.
type AuthFiles struct {
	// UsernameFile and PasswordFile hold HTTP basic-auth credentials (a
	// forge token goes in the password file; the username defaults to
	// "git").
	UsernameFile string
	PasswordFile string
	// TokenFile holds a bearer token.
	TokenFile string
	// SSHKeyFile, SSHKnownHostsFile and SSHUser are copied into Auth.
	SSHKeyFile        string
	SSHKnownHostsFile string
	SSHUser           string
	// Getenv reads the environment (default os.Getenv).
	Getenv func(string) string
}

// Load reads the credentials. Each file's content is trimmed of
// surrounding white space; an empty file is an error. Errors name the file,
// never its content.
func (f AuthFiles) Load() (Auth, error) {
	getenv := f.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	read := func(path, env string) (string, error) {
		if path == "" {
			return strings.TrimSpace(getenv(env)), nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("credentials: %w", err)
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return "", fmt.Errorf("credentials: %s is empty", path)
		}
		return s, nil
	}
	var a Auth
	var err error
	if a.Username, err = read(f.UsernameFile, EnvGitUsername); err != nil {
		return Auth{}, err
	}
	if a.Password, err = read(f.PasswordFile, EnvGitPassword); err != nil {
		return Auth{}, err
	}
	if a.BearerToken, err = read(f.TokenFile, EnvGitToken); err != nil {
		return Auth{}, err
	}
	if a.BearerToken != "" && a.Password != "" {
		return Auth{}, errors.New("credentials: give either a token or a password, not both")
	}
	if a.BearerToken != "" && a.Username != "" {
		// A username with a token means basic auth with the token as the
		// password, which GitHub, GitLab and Gitea accept.
		a.Password, a.BearerToken = a.BearerToken, ""
	}
	a.SSHKeyFile, a.SSHKnownHostsFile, a.SSHUser = f.SSHKeyFile, f.SSHKnownHostsFile, f.SSHUser
	return a, nil
}

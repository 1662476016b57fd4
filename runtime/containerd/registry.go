package containerd

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
)

// RegistryOptions configure how images are pulled.
type RegistryOptions struct {
	// Mirrors maps a registry host ("docker.io", "registry.example:5000")
	// to mirror endpoints ("https://mirror.local", "http://10.0.0.5:5000")
	// tried in order before the registry itself.
	Mirrors map[string][]string
	// Insecure lists registry hosts ("host" or "host:port") pulled from
	// over plain HTTP. Loopback hosts always are.
	Insecure []string
	// AuthFile is a docker config.json with registry credentials (the
	// "auths" section); default: $DOCKER_CONFIG/config.json or
	// ~/.docker/config.json when it exists.
	AuthFile string
}

// DockerConfig is the part of a docker config.json (or the
// .dockerconfigjson of a kubernetes.io/dockerconfigjson Secret) berth
// reads: credentials per registry.
type DockerConfig struct {
	Auths map[string]DockerAuth `json:"auths"`
}

// DockerAuth is one registry's credentials: username and password, or
// "auth" holding base64("username:password").
type DockerAuth struct {
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	Auth     string `json:"auth,omitempty"`
}

// ParseDockerConfig parses a docker config.json or .dockerconfigjson. A
// legacy .dockercfg (the auths map alone) is accepted too.
func ParseDockerConfig(b []byte) (DockerConfig, error) {
	var c DockerConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("docker config: %w", err)
	}
	if c.Auths == nil {
		var legacy map[string]DockerAuth
		if err := json.Unmarshal(b, &legacy); err == nil {
			c.Auths = legacy
		}
	}
	return c, nil
}

// registryKey reduces a docker config key ("https://index.docker.io/v1/",
// "registry.example:5000") to the host the resolver asks about.
func registryKey(k string) string {
	if strings.Contains(k, "://") {
		if u, err := url.Parse(k); err == nil {
			k = u.Host
		}
	}
	k, _, _ = strings.Cut(k, "/")
	switch k {
	case "index.docker.io", "docker.io":
		return "registry-1.docker.io"
	}
	return k
}

// Credentials returns the username and password for host, or empty
// strings when the config has none.
func (c DockerConfig) Credentials(host string) (string, string, error) {
	for k, a := range c.Auths {
		if registryKey(k) != registryKey(host) {
			continue
		}
		if a.Username != "" || a.Password != "" {
			return a.Username, a.Password, nil
		}
		if a.Auth != "" {
			dec, err := base64.StdEncoding.DecodeString(a.Auth)
			if err != nil {
				return "", "", fmt.Errorf("credentials for %s: auth is not base64", host)
			}
			u, p, ok := strings.Cut(string(dec), ":")
			if !ok {
				return "", "", fmt.Errorf("credentials for %s: auth is not user:password", host)
			}
			return u, p, nil
		}
	}
	return "", "", nil
}

// defaultAuthFile is where docker keeps credentials.
func defaultAuthFile() string {
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		return filepath.Join(d, "config.json")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".docker", "config.json")
	}
	return ""
}

// loadAuthFile reads the node's credentials; a missing default file is
// no credentials.
func loadAuthFile(path string, explicit bool) (DockerConfig, error) {
	if path == "" {
		return DockerConfig{}, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && !explicit {
		return DockerConfig{}, nil
	}
	if err != nil {
		return DockerConfig{}, fmt.Errorf("registry credentials: %w", err)
	}
	return ParseDockerConfig(b)
}

// resolver returns a resolver that tries the mirrors of a registry before
// it, talks plain HTTP to loopback and insecure registries, and
// authenticates (basic, or token auth as the registry asks) with the
// first of configs that has credentials for the host.
func (r *Runtime) resolver(configs ...DockerConfig) remotes.Resolver {
	creds := func(host string) (string, string, error) {
		for _, c := range configs {
			u, p, err := c.Credentials(host)
			if err != nil || u != "" || p != "" {
				return u, p, err
			}
		}
		return "", "", nil
	}
	authorizer := docker.NewDockerAuthorizer(docker.WithAuthCreds(creds))
	plain := func(host string) bool {
		if ok, _ := docker.MatchLocalhost(host); ok {
			return true
		}
		return slices.Contains(r.registry.Insecure, host)
	}
	client := &http.Client{Transport: docker.DefaultHTTPTransport(nil)}
	defaults := docker.ConfigureDefaultRegistries(
		docker.WithPlainHTTP(func(h string) (bool, error) { return plain(h), nil }),
		docker.WithAuthorizer(authorizer),
		docker.WithClient(client),
	)
	hosts := func(host string) ([]docker.RegistryHost, error) {
		var out []docker.RegistryHost
		for _, m := range r.registry.Mirrors[host] {
			u, err := url.Parse(m)
			if err != nil || u.Host == "" {
				return nil, fmt.Errorf("mirror %q of %s: want a URL such as https://mirror.example", m, host)
			}
			path := strings.TrimSuffix(u.Path, "/")
			if path == "" {
				path = "/v2"
			}
			out = append(out, docker.RegistryHost{
				Client: client, Authorizer: authorizer, Host: u.Host, Scheme: u.Scheme, Path: path,
				Capabilities: docker.HostCapabilityPull | docker.HostCapabilityResolve,
			})
		}
		def, err := defaults(host)
		if err != nil {
			return nil, err
		}
		return append(out, def...), nil
	}
	return docker.NewResolver(docker.ResolverOptions{Hosts: hosts})
}

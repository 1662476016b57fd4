package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	ctrd "berth.dev/berth/runtime/containerd"
)

// registryFlags configure pulls: mirrors, plain-HTTP registries and the
// node's credentials.
type registryFlags struct {
	mirrors  mirrorFlag
	insecure []string
	authFile string
}

// mirrorFlag collects HOST=URL mirrors, checked as they are set.
type mirrorFlag map[string][]string

func (m mirrorFlag) String() string { return "" }

func (m mirrorFlag) Set(v string) error {
	for _, one := range strings.Split(v, ",") {
		host, u, ok := strings.Cut(strings.TrimSpace(one), "=")
		if !ok || host == "" || !strings.Contains(u, "://") {
			return fmt.Errorf("%q: want HOST=URL, e.g. docker.io=https://mirror.example", one)
		}
		m[host] = append(m[host], u)
	}
	return nil
}

func (r *registryFlags) register(fs *flag.FlagSet) {
	r.mirrors = mirrorFlag{}
	fs.Var(r.mirrors, "registry-mirror", "HOST=URL: pull images of registry HOST from the mirror at URL first (repeatable; the variable takes a comma-separated list)")
	fs.Var(listFlag{&r.insecure}, "insecure-registry", "a registry host (host or host:port) reached over plain HTTP (repeatable)")
	fs.StringVar(&r.authFile, "registry-auth", "", "docker config.json with registry credentials (default: ~/.docker/config.json if present)")
}

func (r *registryFlags) value() ctrd.RegistryOptions {
	return ctrd.RegistryOptions{Mirrors: r.mirrors, Insecure: r.insecure, AuthFile: r.authFile}
}

func imageCommand() command {
	return command{
		name: "image", args: "import FILE…",
		summary: "import images from OCI or docker save archives (for hosts without a registry)",
		run:     runImage,
	}
}

func runImage(ctx context.Context, c *cli, args []string) error {
	if len(args) < 2 || args[0] != "import" {
		return errors.New("usage: berth image import FILE… (OCI image layout or docker save archives; - reads standard input)")
	}
	rt, err := c.runtime(ctx)
	if err != nil {
		return err
	}
	defer rt.Close()
	for _, name := range args[1:] {
		f := os.Stdin
		if name != "-" {
			if f, err = os.Open(name); err != nil {
				return err
			}
		}
		names, err := rt.ImportImages(ctx, f)
		if name != "-" {
			f.Close()
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		for _, n := range names {
			fmt.Fprintf(c.stdout, "imported %s\n", n)
		}
	}
	return nil
}

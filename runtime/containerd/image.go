package containerd

import (
	"context"
	"fmt"
	"slices"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"

	"berth.dev/berth/reconcile"
)

// NormalizeImage returns the fully qualified form of an image reference, as
// containerd's image store names images: "busybox" becomes
// "docker.io/library/busybox:latest". A reference that does not parse is
// returned unchanged (the lookup then fails with its own error).
func NormalizeImage(image string) string {
	named, err := reference.ParseDockerRef(image)
	if err != nil {
		return image
	}
	return named.String()
}

// EnsureImage makes image available and unpacked into the overlayfs
// snapshotter. PullNever requires it in the image store; PullIfNotPresent
// (and an empty policy) pulls it when missing; PullAlways pulls it.
func (r *Runtime) EnsureImage(ctx context.Context, image, policy string) error {
	ctx = r.nsctx(ctx)
	ref := NormalizeImage(image)
	if policy != reconcile.PullAlways {
		img, err := r.client.GetImage(ctx, ref)
		switch {
		case err == nil:
			return ensureUnpacked(ctx, img)
		case !errdefs.IsNotFound(err):
			return fmt.Errorf("image %q: %w", image, err)
		case policy == reconcile.PullNever:
			return fmt.Errorf("image %q is not present and imagePullPolicy is Never: %w", image, err)
		}
	}
	r.log.Info("pulling image", "image", ref)
	if _, err := r.client.Pull(ctx, ref,
		client.WithPullUnpack,
		client.WithPullSnapshotter(snapshotter),
		client.WithResolver(r.resolver()),
	); err != nil {
		return fmt.Errorf("pull %q: %w", image, err)
	}
	return nil
}

func ensureUnpacked(ctx context.Context, img client.Image) error {
	ok, err := img.IsUnpacked(ctx, snapshotter)
	if err != nil {
		return fmt.Errorf("image %q: %w", img.Name(), err)
	}
	if ok {
		return nil
	}
	if err := img.Unpack(ctx, snapshotter); err != nil {
		return fmt.Errorf("unpack %q: %w", img.Name(), err)
	}
	return nil
}

// resolver talks plain HTTP to loopback registries and to
// Options.InsecureRegistries, HTTPS to every other.
func (r *Runtime) resolver() remotes.Resolver {
	plain := func(host string) (bool, error) {
		if ok, _ := docker.MatchLocalhost(host); ok {
			return true, nil
		}
		return slices.Contains(r.insecure, host), nil
	}
	return docker.NewResolver(docker.ResolverOptions{
		Hosts: docker.ConfigureDefaultRegistries(docker.WithPlainHTTP(plain)),
	})
}

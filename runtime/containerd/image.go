package containerd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

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
// snapshotter, with the node's registry credentials. PullNever requires it
// in the image store; PullIfNotPresent (and an empty policy) pulls it when
// missing; PullAlways pulls it. A failed pull wraps
// reconcile.ErrImagePull.
func (r *Runtime) EnsureImage(ctx context.Context, image, policy string) error {
	return r.ensureImage(ctx, image, policy, nil)
}

var _ reconcile.PodImageEnsurer = (*Runtime)(nil)

// EnsurePodImage is EnsureImage with the pod's imagePullSecrets tried
// before the node's credentials.
func (r *Runtime) EnsurePodImage(ctx context.Context, pod *reconcile.DesiredPod, image, policy string) error {
	var configs []DockerConfig
	for _, ref := range pod.Spec.ImagePullSecrets {
		s := pod.Secrets[ref.Name]
		if s == nil {
			continue
		}
		for _, key := range []string{".dockerconfigjson", ".dockercfg"} {
			if b, ok := s.Data[key]; ok {
				c, err := ParseDockerConfig(b)
				if err != nil {
					return fmt.Errorf("imagePullSecret %q: %w", ref.Name, err)
				}
				configs = append(configs, c)
			}
		}
	}
	return r.ensureImage(ctx, image, policy, configs)
}

func (r *Runtime) ensureImage(ctx context.Context, image, policy string, configs []DockerConfig) error {
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
	log := r.log.With("image", ref)
	log.Info("pulling image")
	start := time.Now()
	var mu sync.Mutex
	var layers, bytes int64
	progress := images.HandlerFunc(func(_ context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		if images.IsLayerType(desc.MediaType) {
			mu.Lock()
			layers++
			bytes += desc.Size
			n, total := layers, bytes
			mu.Unlock()
			log.Info("pulling layer", "digest", desc.Digest.String(), "size", desc.Size, "layers", n, "bytes", total)
		}
		return nil, nil
	})
	img, err := r.client.Pull(ctx, ref,
		client.WithPullUnpack,
		client.WithPullSnapshotter(snapshotter),
		client.WithResolver(r.resolver(append(configs, r.nodeAuth)...)),
		client.WithImageHandler(progress),
	)
	if err != nil {
		return fmt.Errorf("%w: pull %q: %v", reconcile.ErrImagePull, image, err)
	}
	log.Info("pulled image", "digest", img.Target().Digest.String(), "layers", layers, "bytes", bytes,
		"duration", time.Since(start).Round(time.Millisecond))
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

// ImportImages imports the images of an OCI image layout archive or a
// `docker save` archive read from rd into the image store and unpacks
// them, for devices without a registry. It returns the names of the
// images imported.
func (r *Runtime) ImportImages(ctx context.Context, rd io.Reader) ([]string, error) {
	ctx = r.nsctx(ctx)
	imgs, err := r.client.Import(ctx, rd, client.WithAllPlatforms(false))
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	var names []string
	for _, img := range imgs {
		if err := ensureUnpacked(ctx, client.NewImage(r.client, img)); err != nil {
			return names, err
		}
		names = append(names, img.Name)
	}
	if len(names) == 0 {
		return nil, errors.New("import: the archive names no image (an OCI layout needs the org.opencontainers.image.ref.name annotation)")
	}
	return names, nil
}

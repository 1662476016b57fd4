package reconcile

import (
	"context"
	"errors"
)

// ErrImagePull marks an error pulling an image (not found, refused,
// unreachable registry), as Kubernetes' ErrImagePull reason; callers back
// off and retry (ImagePullBackOff).
var ErrImagePull = errors.New("ErrImagePull")

// PodImageEnsurer is implemented by runtimes that can pull an image with
// the pod's imagePullSecrets (Secrets of type
// kubernetes.io/dockerconfigjson, resolved into DesiredPod.Secrets).
type PodImageEnsurer interface {
	EnsurePodImage(ctx context.Context, pod *DesiredPod, image, policy string) error
}

// EnsurePodImage makes image available for pod: with the pod's pull
// secrets when rt can use them, else through Runtime.EnsureImage.
func EnsurePodImage(ctx context.Context, rt Runtime, pod *DesiredPod, image, policy string) error {
	if e, ok := rt.(PodImageEnsurer); ok {
		return e.EnsurePodImage(ctx, pod, image, policy)
	}
	return rt.EnsureImage(ctx, image, policy)
}

// PodImages returns, for each image and pull policy the pod uses, the
// first container (init containers first) that uses it.
func PodImages(p *DesiredPod) []Container {
	var out []Container
	seen := map[string]bool{}
	for _, c := range append(append([]Container(nil), p.Spec.InitContainers...), p.Spec.Containers...) {
		key := c.Image + "\x00" + c.ImagePullPolicy
		if !seen[key] {
			seen[key] = true
			out = append(out, c)
		}
	}
	return out
}

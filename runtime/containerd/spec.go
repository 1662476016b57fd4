package containerd

import (
	"cmp"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/containerd/containerd/v2/pkg/oci"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/reconcile/podspec"
)

// SpecInput is everything the OCI spec of one container of a pod is built
// from.
type SpecInput struct {
	Pod       *reconcile.DesiredPod
	Container *reconcile.Container
	// Image is the image's configuration (entrypoint, cmd, env, workdir,
	// user).
	Image ocispec.ImageConfig
	// Paths are the pod's host paths.
	Paths PodPaths
	// SubPaths are the staged host paths of the container's subPath
	// mounts, by the mount's index (see stageSubPaths); a subPath without
	// one is joined to its volume's path, which only a spec that is never
	// run may do.
	SubPaths map[int]string
	// PodIP and HostIP answer the downward API's status.podIP and
	// status.hostIP.
	PodIP, HostIP string
	// SeccompProfile is the content of a Localhost seccomp profile the
	// container's securityContext names.
	SeccompProfile []byte
	// PIDNamespace, when set, is the PID namespace to join (the pod's
	// shared one, for shareProcessNamespace).
	PIDNamespace string
	// ShimGroup is the shim group the container runs in; empty: one of
	// the pod's own (its sandbox ID).
	ShimGroup string
}

// SpecOpts translates a container of a pod into OCI spec options, applied
// on top of containerd's default spec. It does no I/O (except WithUser
// and WithUserID, which read the image's /etc/passwd at creation).
//
//   - Process args follow Kubernetes: command replaces the image's
//     entrypoint (and drops its cmd); args replace the image's cmd;
//     $(VAR) in command and args is expanded from the container's env.
//   - Env is the image's, then the container's (envFrom, env, valueFrom,
//     see ContainerEnv), then HOSTNAME.
//   - The working directory is the container's, else the image's, else /.
//   - The pod's network, IPC and UTS namespaces are joined by path (or the
//     host's, for hostNetwork, hostIPC, hostPID); the hostname is the
//     pod's.
//   - /etc/hosts, /etc/hostname and /etc/resolv.conf are the pod's files;
//     volumeMounts become bind mounts (readOnly, subPath honoured;
//     configMap, secret, downwardAPI and projected volumes are always
//     read-only).
//   - Requests and limits become cgroup settings (ContainerResources);
//     the securityContext becomes user, groups, capabilities, seccomp,
//     no_new_privs, read-only rootfs and sysctls (see securityOpts).
//   - The runc shim group annotation puts every container of the pod in one
//     shim.
func SpecOpts(in SpecInput) ([]oci.SpecOpts, error) {
	c := in.Container
	own, err := podspec.ContainerEnv(podspec.EnvInput{Pod: in.Pod, Container: c, PodIP: in.PodIP, HostIP: in.HostIP, Host: hostCapacity()})
	if err != nil {
		return nil, err
	}
	args := processArgs(in.Image, podspec.ExpandArgs(c.Command, own), podspec.ExpandArgs(c.Args, own))
	if len(args) == 0 {
		return nil, fmt.Errorf("container %q: no command: the image has no entrypoint or cmd and none is given", c.Name)
	}
	hostname := podHostname(in.Pod)
	env := append([]string{}, in.Image.Env...)
	for _, kv := range own {
		k, v, _ := strings.Cut(kv, "=")
		env = setEnv(env, k, v)
	}
	env = setEnv(env, "HOSTNAME", hostname)
	cwd := c.WorkingDir
	if cwd == "" {
		cwd = in.Image.WorkingDir
	}
	if cwd == "" {
		cwd = "/"
	}
	mounts, err := volumeMounts(in.Pod, c, in.Paths, in.SubPaths)
	if err != nil {
		return nil, err
	}
	res, err := ContainerResources(c)
	if err != nil {
		return nil, err
	}
	spec := in.Pod.Spec
	opts := []oci.SpecOpts{
		oci.WithDefaultPathEnv,
		oci.WithEnv(env),
		oci.WithProcessArgs(args...),
		oci.WithProcessCwd(cwd),
		oci.WithMounts(mounts),
		withResources(res),
		oci.WithAnnotations(map[string]string{shimGroupAnnotation: cmp.Or(in.ShimGroup, SandboxID(in.Pod.ID))}),
	}
	if spec.HostNetwork {
		opts = append(opts, oci.WithHostNamespace(specs.NetworkNamespace), oci.WithHostNamespace(specs.UTSNamespace))
	} else {
		opts = append(opts,
			oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: in.Paths.NetNS}),
			oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.UTSNamespace, Path: in.Paths.UTS}),
			oci.WithHostname(hostname))
	}
	if spec.HostIPC {
		opts = append(opts, oci.WithHostNamespace(specs.IPCNamespace))
	} else {
		opts = append(opts, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.IPCNamespace, Path: in.Paths.IPC}))
	}
	switch {
	case spec.HostPID:
		opts = append(opts, oci.WithHostNamespace(specs.PIDNamespace))
	case in.PIDNamespace != "":
		opts = append(opts, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.PIDNamespace, Path: in.PIDNamespace}))
	}
	opts = append(opts, withCgroupMount(podspec.Security(in.Pod, c).Privileged))
	if hasCgroupNS() {
		opts = append(opts, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.CgroupNamespace}))
	}
	sec, err := securityOpts(in)
	if err != nil {
		return nil, err
	}
	return append(opts, sec...), nil
}

// setEnv sets name=value in env, replacing an earlier value in place.
func setEnv(env []string, name, value string) []string {
	for i, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == name {
			env[i] = name + "=" + value
			return env
		}
	}
	return append(env, name+"="+value)
}

// withCgroupMount mounts the container's own cgroup at /sys/fs/cgroup,
// read-only unless the container is privileged, as containerd's CRI
// does: a JVM, Go's runtime or Node read their memory and CPU limits
// there.
func withCgroupMount(privileged bool) oci.SpecOpts {
	mode := "ro"
	if privileged {
		mode = "rw"
	}
	return oci.WithMounts([]specs.Mount{{
		Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup",
		Options: []string{"nosuid", "noexec", "nodev", "relatime", mode},
	}})
}

// hasCgroupNS reports whether the kernel has cgroup namespaces: then
// each container gets its own, so /sys/fs/cgroup and /proc/self/cgroup
// show its cgroup as the root.
func hasCgroupNS() bool {
	_, err := os.Stat("/proc/self/ns/cgroup")
	return err == nil
}

// processArgs applies Kubernetes' command/args rules to the image's
// entrypoint and cmd.
func processArgs(img ocispec.ImageConfig, command, args []string) []string {
	var out []string
	switch {
	case len(command) > 0:
		out = append(out, command...)
		out = append(out, args...)
	case len(args) > 0:
		out = append(out, img.Entrypoint...)
		out = append(out, args...)
	default:
		out = append(out, img.Entrypoint...)
		out = append(out, img.Cmd...)
	}
	return out
}

func volumeMounts(pod *reconcile.DesiredPod, c *reconcile.Container, p PodPaths, subPaths map[int]string) ([]specs.Mount, error) {
	bindProp := func(src, dst string, ro bool, propagation string) specs.Mount {
		mode := "rw"
		if ro {
			mode = "ro"
		}
		prop := "rprivate"
		switch propagation {
		case "HostToContainer":
			prop = "rslave"
		case "Bidirectional":
			prop = "rshared"
		}
		return specs.Mount{Destination: dst, Type: "bind", Source: src, Options: []string{"rbind", prop, mode}}
	}
	bind := func(src, dst string, ro bool) specs.Mount { return bindProp(src, dst, ro, "") }
	mounts := []specs.Mount{
		bind(p.etc("hosts"), "/etc/hosts", false),
		bind(p.etc("hostname"), "/etc/hostname", false),
		bind(p.etc("resolv.conf"), "/etc/resolv.conf", false),
	}
	for i, vm := range c.VolumeMounts {
		src, err := volumeSource(pod, p, vm.Name)
		if err != nil {
			return nil, fmt.Errorf("container %q: %w", c.Name, err)
		}
		if vm.SubPath != "" {
			if !filepath.IsLocal(vm.SubPath) {
				return nil, fmt.Errorf("container %q: volumeMount %q: subPath %q must be a relative path inside the volume", c.Name, vm.Name, vm.SubPath)
			}
			src = filepath.Join(src, vm.SubPath)
			if staged, ok := subPaths[i]; ok {
				src = staged
			}
		}
		if !path.IsAbs(vm.MountPath) {
			return nil, fmt.Errorf("container %q: volumeMount %q: mountPath %q must be absolute", c.Name, vm.Name, vm.MountPath)
		}
		mounts = append(mounts, bindProp(src, path.Clean(vm.MountPath), vm.ReadOnly || readOnlyVolume(pod, vm.Name), vm.MountPropagation))
	}
	return mounts, nil
}

// volumeSource returns the host path backing the named volume of pod.
func volumeSource(pod *reconcile.DesiredPod, p PodPaths, name string) (string, error) {
	for _, v := range pod.Spec.Volumes {
		if v.Name != name {
			continue
		}
		switch {
		case v.EmptyDir != nil, v.ConfigMap != nil, v.Secret != nil, v.DownwardAPI != nil, v.Projected != nil:
			return p.volume(v.Name), nil
		case v.HostPath != nil:
			if !filepath.IsAbs(v.HostPath.Path) {
				return "", fmt.Errorf("volume %q: hostPath %q must be absolute", v.Name, v.HostPath.Path)
			}
			return filepath.Clean(v.HostPath.Path), nil
		default:
			return "", fmt.Errorf("volume %q: no supported source (emptyDir, hostPath, configMap, secret, downwardAPI, projected)", v.Name)
		}
	}
	return "", fmt.Errorf("volume %q is not declared in the pod", name)
}

// readOnlyVolume reports whether the named volume is mounted read-only
// whatever the mount says, as Kubernetes mounts configMap, secret,
// downwardAPI and projected volumes.
func readOnlyVolume(pod *reconcile.DesiredPod, name string) bool {
	for _, v := range pod.Spec.Volumes {
		if v.Name == name {
			return v.ConfigMap != nil || v.Secret != nil || v.DownwardAPI != nil || v.Projected != nil
		}
	}
	return false
}

package containerd

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"path"
	"path/filepath"
	"strings"

	"github.com/containerd/containerd/v2/pkg/oci"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth.dev/berth/reconcile"
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
}

// SpecOpts translates a container of a pod into OCI spec options, applied
// on top of containerd's default spec. It does no I/O (except WithUser
// when the image names a user, which reads the rootfs at creation).
//
//   - Process args follow Kubernetes: command replaces the image's
//     entrypoint (and drops its cmd); args replace the image's cmd.
//   - Env is the image's, then the container's (which wins), then HOSTNAME.
//   - The working directory is the container's, else the image's, else /.
//   - The pod's network, IPC and UTS namespaces are joined by path; the
//     hostname is the pod's.
//   - /etc/hosts, /etc/hostname and /etc/resolv.conf are the pod's files;
//     volumeMounts become bind mounts (readOnly, subPath honoured).
//   - The runc shim group annotation puts every container of the pod in one
//     shim.
func SpecOpts(in SpecInput) ([]oci.SpecOpts, error) {
	c := in.Container
	args := processArgs(in.Image, c.Command, c.Args)
	if len(args) == 0 {
		return nil, fmt.Errorf("container %q: no command: the image has no entrypoint or cmd and none is given", c.Name)
	}
	hostname := PodHostname(in.Pod)
	env := append([]string{}, in.Image.Env...)
	for _, e := range c.Env {
		env = setEnv(env, e.Name, e.Value)
	}
	env = setEnv(env, "HOSTNAME", hostname)
	cwd := c.WorkingDir
	if cwd == "" {
		cwd = in.Image.WorkingDir
	}
	if cwd == "" {
		cwd = "/"
	}
	mounts, err := volumeMounts(in.Pod, c, in.Paths)
	if err != nil {
		return nil, err
	}
	opts := []oci.SpecOpts{
		oci.WithDefaultPathEnv,
		oci.WithEnv(env),
		oci.WithProcessArgs(args...),
		oci.WithProcessCwd(cwd),
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: in.Paths.NetNS}),
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.IPCNamespace, Path: in.Paths.IPC}),
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.UTSNamespace, Path: in.Paths.UTS}),
		oci.WithHostname(hostname),
		oci.WithMounts(mounts),
		oci.WithAnnotations(map[string]string{shimGroupAnnotation: SandboxID(in.Pod.ID)}),
	}
	if in.Image.User != "" {
		opts = append(opts, oci.WithUser(in.Image.User))
	}
	return opts, nil
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

// PodHostname is the pod's hostname: spec.hostname, else the pod's name.
func PodHostname(pod *reconcile.DesiredPod) string {
	if pod.Spec.Hostname != "" {
		return pod.Spec.Hostname
	}
	return pod.ID.Name
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

func volumeMounts(pod *reconcile.DesiredPod, c *reconcile.Container, p PodPaths) ([]specs.Mount, error) {
	bind := func(src, dst string, ro bool) specs.Mount {
		mode := "rw"
		if ro {
			mode = "ro"
		}
		return specs.Mount{Destination: dst, Type: "bind", Source: src, Options: []string{"rbind", "rprivate", mode}}
	}
	mounts := []specs.Mount{
		bind(p.etc("hosts"), "/etc/hosts", false),
		bind(p.etc("hostname"), "/etc/hostname", false),
		bind(p.etc("resolv.conf"), "/etc/resolv.conf", false),
	}
	for _, vm := range c.VolumeMounts {
		src, err := volumeSource(pod, p, vm.Name)
		if err != nil {
			return nil, fmt.Errorf("container %q: %w", c.Name, err)
		}
		if vm.SubPath != "" {
			if !filepath.IsLocal(vm.SubPath) {
				return nil, fmt.Errorf("container %q: volumeMount %q: subPath %q must be a relative path inside the volume", c.Name, vm.Name, vm.SubPath)
			}
			src = filepath.Join(src, vm.SubPath)
		}
		if !path.IsAbs(vm.MountPath) {
			return nil, fmt.Errorf("container %q: volumeMount %q: mountPath %q must be absolute", c.Name, vm.Name, vm.MountPath)
		}
		mounts = append(mounts, bind(src, path.Clean(vm.MountPath), vm.ReadOnly))
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
		case v.EmptyDir != nil:
			return p.volume(v.Name), nil
		case v.HostPath != nil:
			if !filepath.IsAbs(v.HostPath.Path) {
				return "", fmt.Errorf("volume %q: hostPath %q must be absolute", v.Name, v.HostPath.Path)
			}
			return filepath.Clean(v.HostPath.Path), nil
		default:
			return "", fmt.Errorf("volume %q: no supported source (emptyDir or hostPath)", v.Name)
		}
	}
	return "", fmt.Errorf("volume %q is not declared in the pod", name)
}

// HostsFile returns the pod's /etc/hosts.
func HostsFile(ip, hostname string) []byte {
	var b bytes.Buffer
	b.WriteString("127.0.0.1\tlocalhost\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	if ip != "" {
		fmt.Fprintf(&b, "%s\t%s\n", ip, hostname)
	}
	return b.Bytes()
}

// ResolvConf returns the pod's /etc/resolv.conf from the host's: nameservers
// on loopback (a local stub resolver) cannot be reached from the pod's
// network and are dropped.
func ResolvConf(host []byte) []byte {
	var b bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(host))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			if ip := net.ParseIP(f[1]); ip != nil && ip.IsLoopback() {
				continue
			}
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

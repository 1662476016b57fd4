package containerd

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"regexp"
	"strings"

	"berth.dev/berth/reconcile"
)

// Labels berth puts on containerd objects. Only containers with
// LabelManaged=true are ever listed, stopped or deleted.
const (
	LabelManaged       = "berth.dev/managed"
	LabelRole          = "berth.dev/role"
	LabelPodNamespace  = "berth.dev/pod-namespace"
	LabelPodName       = "berth.dev/pod-name"
	LabelOwner         = "berth.dev/owner"
	LabelHash          = "berth.dev/hash"
	LabelRevision      = "berth.dev/revision"
	LabelGracePeriod   = "berth.dev/grace-period"
	LabelIP            = "berth.dev/ip"
	LabelSandboxReady  = "berth.dev/sandbox-ready"
	LabelSandboxID     = "berth.dev/sandbox-id"
	LabelContainerName = "berth.dev/container-name"
	LabelContainerKind = "berth.dev/container-kind"
	LabelImage         = "berth.dev/image"
	LabelStartedAt     = "berth.dev/started-at"
	// LabelHostNetwork is "true" on the sandbox record of a hostNetwork
	// pod: it has no network namespace and no CNI attachment.
	LabelHostNetwork = "berth.dev/host-network"
	// LabelPorts holds the pod's host port mappings (JSON), which CNI DEL
	// needs to remove the portmap rules.
	LabelPorts = "berth.dev/ports"
	// LabelCNIID is the container ID the sandbox's CNI attachment uses:
	// unique per sandbox (its containerd namespace, pod and a random
	// part), so berth instances sharing a network, and a pod's successive
	// sandboxes, never mix up their IP allocations or iptables chains.
	// Records made before it existed use SandboxID.
	LabelCNIID = "berth.dev/cni-id"
	// LabelContainerNames on a sandbox record names the pod's init and
	// app containers, comma-separated, so that observing one pod gets
	// its records by ID (ObservePod) where a list by label reads every
	// record of the namespace. Left out when too long for a label.
	LabelContainerNames = "berth.dev/containers"
)

// Values of LabelRole.
const (
	RoleSandbox   = "sandbox"
	RoleContainer = "container"
)

// shimGroupAnnotation makes the runc v2 shim serve every container with the
// same value from one process (read by containerd 1.6's shim manager from
// the OCI spec's annotations).
const shimGroupAnnotation = "io.containerd.runc.v2.group"

// maxIDLen is containerd's limit on identifiers.
const maxIDLen = 76

var (
	identifierRE = regexp.MustCompile(`^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$`)
	separatorsRE = regexp.MustCompile(`[^A-Za-z0-9]+`)
)

// SandboxID returns the ID of the pod's sandbox record: "<namespace>_<name>"
// when that is a valid containerd identifier of at most 76 characters,
// otherwise a readable prefix and a SHA-256 suffix. "_" cannot appear in
// DNS-1123 names, so the separator is unambiguous.
func SandboxID(id reconcile.PodID) string {
	return shortID(id.Namespace + "_" + id.Name)
}

// ContainerID returns the containerd ID of the named container of a pod as
// it is first made: "<namespace>_<name>_<container>", shortened like
// SandboxID. It is also the key of the container's snapshot and the ID of
// its lease. Each start alternates between this ID and a second one
// (InstanceIDs).
func ContainerID(id reconcile.PodID, name string) string {
	return shortID(id.Namespace + "_" + id.Name + "_" + name)
}

// InstanceIDs are the two IDs a container's instances alternate between
// from one start to the next: the new instance is made and started in the
// slot the last one does not use, and the last one, exited, is removed
// after, so a restart does not wait for the old task's and snapshot's
// deletion (a kubelet makes a new container for each attempt too). The
// second is "<container id>.1": container names have no ".".
func InstanceIDs(id reconcile.PodID, name string) [2]string {
	return [2]string{ContainerID(id, name), shortID(id.Namespace + "_" + id.Name + "_" + name + ".1")}
}

// NetNSName returns the name of the pod's network namespace as `ip netns`
// shows it: "<containerd namespace>-<sandbox id>", so berth instances
// working in different containerd namespaces on one host never share a
// network namespace ("berth-default_web" for the default namespace).
func NetNSName(namespace string, id reconcile.PodID) string {
	name := namespace + "-" + SandboxID(id)
	if len(name) > 120 {
		sum := sha256.Sum256([]byte(name))
		name = name[:80] + "-" + hex.EncodeToString(sum[:])[:32]
	}
	return name
}

func shortID(raw string) string {
	if len(raw) <= maxIDLen && identifierRE.MatchString(raw) {
		return raw
	}
	sum := sha256.Sum256([]byte(raw))
	prefix := strings.Trim(separatorsRE.ReplaceAllString(raw, "-"), "-")
	if len(prefix) > 40 {
		prefix = strings.TrimRight(prefix[:40], "-")
	}
	h := hex.EncodeToString(sum[:])[:32]
	if prefix == "" {
		return h
	}
	return prefix + "-" + h
}

// PodPaths are the host paths of one pod.
type PodPaths struct {
	// Dir is <StateDir>/pods/<sandbox id>.
	Dir string
	// NetNS, IPC and UTS are the pinned namespaces.
	NetNS, IPC, UTS string
}

func (p PodPaths) volume(name string) string { return filepath.Join(p.Dir, "volumes", name) }
func (p PodPaths) logDir() string            { return filepath.Join(p.Dir, "logs") }
func (p PodPaths) etc(name string) string    { return filepath.Join(p.Dir, "etc", name) }
func (p PodPaths) nsDir() string             { return filepath.Join(p.Dir, "ns") }

// LogPath returns the file a container's stdout and stderr go to.
func (p PodPaths) LogPath(container string) string {
	return filepath.Join(p.logDir(), container+".log")
}

// PreviousLogPath returns the file the log of the container's previous
// instance was moved to when it was replaced.
func (p PodPaths) PreviousLogPath(container string) string {
	return filepath.Join(p.logDir(), "previous", container+".log")
}

// Paths returns the host paths of pod id.
func (r *Runtime) Paths(id reconcile.PodID) PodPaths {
	sb := SandboxID(id)
	dir := filepath.Join(r.stateDir, "pods", sb)
	return PodPaths{
		Dir:   dir,
		NetNS: filepath.Join(r.netnsDir, NetNSName(r.ns, id)),
		IPC:   filepath.Join(dir, "ns", "ipc"),
		UTS:   filepath.Join(dir, "ns", "uts"),
	}
}

// Package containerd runs berth's pods on containerd: it implements
// reconcile.Runtime with the containerd client, a CNI bridge network (via
// go-cni) and pinned network, IPC and UTS namespaces.
//
// A pod is a sandbox record plus one containerd container per container of
// the pod:
//
//   - The sandbox record is a containerd container with no task and no
//     rootfs whose labels carry the pod's identity, spec hash, revision,
//     owner, grace period, and later its IP and a ready flag. It is created
//     before anything else and deleted after everything else, so the labels
//     always describe what exists.
//   - The pod's network namespace is pinned at /var/run/netns/berth-<sandbox
//     id> (so `ip netns` lists it) and joined to the CNI network with
//     loopback and a bridge (host-local IPAM under <StateDir>/cni/networks).
//     Its IPC and UTS namespaces (hostname = spec.hostname or the pod name)
//     are pinned under <StateDir>/pods/<sandbox id>/ns.
//   - emptyDir volumes, logs and the pod's /etc/hosts, /etc/resolv.conf and
//     /etc/hostname live under <StateDir>/pods/<sandbox id>. Secret and
//     projected volumes (and emptyDir with medium Memory) are tmpfs
//     mounts there: Secret material never reaches the state directory's
//     disk.
//   - A hostNetwork pod has no network namespace and no CNI attachment;
//     host port mappings are recorded on the sandbox record, so CNI DEL
//     can remove them whatever happened in between.
//   - Containers' output is written in the CRI log format by one log
//     daemon per shim group (berth-log, see package crilog and logs.go),
//     reading FIFOs the containers' shims write to, so logging does not
//     depend on berth running; removing a container's task releases its
//     FIFOs.
//   - Each container has a deterministic ID, a snapshot with the same key
//     held by a lease with the same ID, and an OCI spec built by the pure
//     function SpecOpts. Its instances alternate between two IDs
//     (InstanceIDs): a start makes the new instance under the ID the last
//     one does not use, starts it, and only then removes the last one
//     (exited; one that runs, or whose state containerd cannot tell, is
//     stopped first), so a restart does not wait for the old task's and
//     snapshot's deletion. List shows the newer of two; an exited instance
//     left by a crash between the two steps goes at the next garbage
//     collection (every command's start, and the agent's every 10
//     minutes), the container's next start or with its pod.
//   - Pods share runc shims: up to Options.PodsPerShim pods (default 16)
//     form a shim group (the io.containerd.runc.v2.group annotation),
//     chosen when a pod's first container starts and recorded on its
//     sandbox record, so all containers of a pod are in one shim. Killing
//     a shim kills the containers of every pod of its group; containerd
//     reports each as an exit, and List shows a container whose task is
//     gone after it ran as exited (137, ContainerStatusUnknown), so the
//     restart policy applies to it.
//   - What a pod means in Kubernetes terms is resolved outside this
//     package, by reconcile/podspec: environment and $(VAR), the downward
//     API, volume files, the effective securityContext, runAsNonRoot, the
//     hostname and the /etc/hosts and /etc/resolv.conf files. This package
//     reads the host facts those take (podspec.Host), maps the results to
//     OCI options and runs prepare → create → start.
//
// CreateSandbox refuses a pod the node policy (Options.Policy,
// reconcile.CheckPolicy) does not allow, before anything is made. The
// preStop hook and the image's STOPSIGNAL are container labels, so any
// later stop honours them.
//
// Invariants: observed state is rebuilt from labels alone (List); IDs are
// derived from the pod identity, so every step can be replayed after a crash
// and finds what an earlier attempt made; containers without the label
// berth.dev/managed=true are never listed, stopped or deleted; teardown runs
// on a fresh bounded context, always calls CNI DEL, and treats not-found as
// success. It works against containerd 1.6 and later: it uses only the
// classic services (containers, tasks, images, content, snapshots, leases,
// introspection), not the transfer or sandbox APIs.
package containerd

# Shared by the bench scripts (and scripts/demo.sh, for
# remove_namespace_dirs): a private containerd under a work directory and
# the busybox test image in it. Source this file; it defines functions
# only.

# start_containerd WORK: start a containerd with its own root, state and
# socket under WORK, wait until it answers, set $pid to its process ID and
# point berth at it (namespace "bench", state under WORK/berth).
start_containerd() {
	local work=$1
	cat >"$work/containerd.toml" <<TOML
version = 2
root = "$work/root"
state = "$work/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$work/containerd.sock"
TOML
	containerd --config "$work/containerd.toml" >"$work/containerd.log" 2>&1 &
	pid=$!
	for _ in $(seq 100); do ctr -a "$work/containerd.sock" version >/dev/null 2>&1 && break; sleep 0.1; done
	ctr -a "$work/containerd.sock" version >/dev/null 2>&1 || { cat "$work/containerd.log" >&2; return 1; }
	export BERTH_CONTAINERD_ADDRESS=$work/containerd.sock BERTH_NAMESPACE=bench BERTH_STATE_DIR=$work/berth
}

# import_busybox WORK REF: build the busybox image REF from busybox-static
# and import it into the bench namespace.
import_busybox() {
	scripts/make-image.sh "$1/busybox.tar" "$2" 2>/dev/null
	ctr -a "$1/containerd.sock" -n bench images import "$1/busybox.tar" >/dev/null
}

# pss PID...: the summed PSS of those processes in KiB (smaps_rollup).
pss() {
	local s=0 p v
	for p in "$@"; do
		v=$(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
		s=$((s + ${v:-0}))
	done
	echo "$s"
}

# pids_matching TEXT: PIDs whose command line contains TEXT (not this
# script's own).
pids_matching() {
	local p
	for p in /proc/[0-9]*; do
		[ "${p#/proc/}" = "$$" ] && continue
		case "$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null)" in
		*grep*|*pids_matching*) ;;
		*"$1"*) echo "${p#/proc/}" ;;
		esac
	done 2>/dev/null
}

# berth_shims WORK: PIDs of the shims of the bench namespace of the
# containerd under WORK.
berth_shims() {
	pids_matching "-address $1/containerd.sock" | while read -r p; do
		tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q -- "-namespace bench " && echo "$p"
	done
}

# berth_log_drivers WORK: PIDs of berth's log processes under WORK: the log
# daemon of each shim group (and the per-container berth-log drivers that
# shims started before berth had log daemons).
berth_log_drivers() { pids_matching "berth-log $1/berth/"; pids_matching "berth-log-daemon $1/berth/"; }

# gen_pods DIR N: N two-container pods in DIR, one file each (web = httpd,
# sleeper = sleep; the workload of ../shared/bench/anchors).
gen_pods() {
	mkdir -p "$1"
	for i in $(seq "$2"); do
		cat >"$1/pod-$i.yaml" <<YAML
apiVersion: v1
kind: Pod
metadata:
  name: pod-$i
spec:
  terminationGracePeriodSeconds: 5
  containers:
    - name: web
      image: example.local/busybox:1
      command: ["sh", "-c", "trap 'exit 0' TERM; httpd -f -p 8080 & wait"]
    - name: sleeper
      image: example.local/busybox:1
      command: ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
YAML
	done
}

# remove_namespace_dirs NS...: the parent cgroups (every hierarchy) and the
# runc directory of containerd namespaces NS, which runc leaves behind,
# empty, once their last container is gone. Only empty ones go (rmdir).
remove_namespace_dirs() {
	local ns c
	for ns in "$@"; do
		for c in /sys/fs/cgroup/*/"$ns" /sys/fs/cgroup/"$ns"; do
			[ -d "$c" ] && { find "$c" -depth -type d -exec rmdir {} + 2>/dev/null || true; }
		done
		rmdir "/run/containerd/runc/$ns" 2>/dev/null || true
	done
	return 0
}

# Shared by the bench scripts: a private containerd under a work directory
# and the busybox test image in it. Source this file; it defines functions
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

#!/usr/bin/env bash
# berth against `podman kube play` on the same repositories, in one run.
#
# For N in $SIZES (default "10 50"), REPS times each (default 3), on one
# multi-document YAML of N two-container busybox pods (web = httpd,
# sleeper = sleep; the workload of ../shared/bench/anchors), image present:
#   berth   start    `berth apply` from nothing (CNI bridge, 4 workers)
#           nochange `berth apply` again with the N pods running
#           down     `berth apply` of an empty repository (--allow-delete-all)
#   podman  start    `podman kube play --network <bridge>` (+ until all run)
#           down     `podman kube down`
#   ctr     start    the raw anchor of ../shared/bench/anchors: `ctr run -d`
#                    of the 2N containers, 4 at a time, on the same
#                    containerd (no network, no pod, a shim per container)
#           down     `ctr task rm -f` and `ctr container rm`, 4 at a time
# and the runtime's memory per pod with N running: PSS of berth's shims and
# log daemons against podman's conmons (smaps_rollup), divided by N.
# Prints a table of medians and the ratios podman/berth and berth/ctr.
#
#   make bench-compare     (root; builds bin/berth; installs podman if missing)
#   SIZES="10 50" REPS=5 bench/compare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
top=$PWD
berth=$top/bin/berth
SIZES=${SIZES:-10 50}
REPS=${REPS:-3}
SETTLE_S=${SETTLE_S:-2}
[ -x "$berth" ] || { echo "compare: build first (make build)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "compare: run as root" >&2; exit 1; }
if ! command -v podman >/dev/null || ! command -v catatonit >/dev/null; then
	echo "compare: installing podman (apt-get install --no-install-recommends podman catatonit)" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman catatonit >/dev/null
fi

work=$(mktemp -d /tmp/berth-compare.XXXXXX)
IMG=example.local/busybox:1
PNET=berth-compare
CTRNS=ctr-anchor
pid=
podman_loaded=
cleanup() {
	set +e
	for y in "$work"/pods-*.yaml; do [ -f "$y" ] && podman kube down "$y" >/dev/null 2>&1; done
	podman network rm -f "$PNET" >/dev/null 2>&1
	[ -n "$podman_loaded" ] && podman rmi -f "$IMG" >/dev/null 2>&1
	if [ -n "$pid" ]; then
		for c in $(ctr -a "$work/containerd.sock" -n "$CTRNS" containers ls -q 2>/dev/null); do
			ctr -a "$work/containerd.sock" -n "$CTRNS" task rm -f "$c" >/dev/null 2>&1
			ctr -a "$work/containerd.sock" -n "$CTRNS" containers rm "$c" >/dev/null 2>&1
		done
		"$berth" apply --repo "$work/empty" --allow-delete-all >/dev/null 2>&1
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	grep -o " $work[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
	ip link delete berthcmp0 2>/dev/null
	remove_namespace_dirs bench "$CTRNS"
	rm -rf "$work"
}
trap cleanup EXIT

# podman as installed on this kind of VM asks runc for rlimits root may not
# raise (see ../shared/bench/anchors/RESULTS.md): a private containers.conf
# with default_ulimits within the hard limits, nothing under /etc changes.
hn=$(ulimit -Hn); [ "$hn" = unlimited ] && hn=1048576; [ "$hn" -gt 1048576 ] && hn=1048576
hu=$(ulimit -Hu); [ "$hu" = unlimited ] && hu=32768; [ "$hu" -gt 32768 ] && hu=32768
if [ -f /usr/share/containers/containers.conf ] && grep -q '^\[containers\]' /usr/share/containers/containers.conf; then
	sed "/^\[containers\]/a default_ulimits = [\"nofile=$hn:$hn\", \"nproc=$hu:$hu\"]" /usr/share/containers/containers.conf >"$work/containers.conf"
else
	printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=%s:%s"]\n' "$hn" "$hn" "$hu" "$hu" >"$work/containers.conf"
fi
export CONTAINERS_CONF=$work/containers.conf

start_containerd "$work"
export BERTH_NETWORK=berth-compare BERTH_BRIDGE=berthcmp0 BERTH_POD_SUBNET=10.253.0.0/16 BERTH_LOG_LEVEL=warn
import_busybox "$work" "$IMG"
ctr -a "$work/containerd.sock" -n "$CTRNS" images import "$work/busybox.tar" >/dev/null
if ! podman image exists "$IMG"; then
	podman load -i "$work/busybox.tar" >/dev/null
	podman_loaded=1
fi
podman network exists "$PNET" || podman network create "$PNET" >/dev/null
mkdir -p "$work/empty"

gen() { # gen N -> one YAML of N pods; grace 0 as podman kube down kills at once
	for i in $(seq 0 $(($1 - 1))); do
		cat <<YAML
---
apiVersion: v1
kind: Pod
metadata:
  name: cmp-p${i}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: web
    image: ${IMG}
    imagePullPolicy: Never
    command: ["httpd", "-f", "-p", "8080"]
  - name: sleeper
    image: ${IMG}
    imagePullPolicy: Never
    command: ["sleep", "3600"]
YAML
	done
}
now() { date +%s%N; }
ms() { echo $((($(now) - $1) / 1000000)); }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
range() { sort -n | awk '{a[NR]=$1} END {printf "%d–%d", a[1], a[NR]}'; }
podman_running() { podman ps --pod --filter status=running --format '{{.PodName}}' | grep -c '^cmp-p' || true; }

declare -A R
echo "berth $("$berth" version | cut -d' ' -f2), podman $(podman version --format '{{.Client.Version}}'), containerd $(containerd --version | awk '{print $3}'), $(nproc) CPUs, REPS=$REPS"
for n in $SIZES; do
	mkdir -p "$work/repo-$n"
	gen "$n" >"$work/repo-$n/pods.yaml"
	cp "$work/repo-$n/pods.yaml" "$work/pods-$n.yaml"
	for rep in $(seq "$REPS"); do
		t=$(now); "$berth" apply --repo "$work/repo-$n" >/dev/null; R[berth-start-$n]+="$(ms "$t") "
		t=$(now); "$berth" apply --repo "$work/repo-$n" >/dev/null; R[berth-nochange-$n]+="$(ms "$t") "
		if [ "$rep" = 1 ]; then
			sleep "$SETTLE_S"
			# shims of berth's containerd namespace, and the log daemons of their groups
			mapfile -t shims < <(berth_shims "$work")
			mapfile -t drivers < <(berth_log_drivers "$work")
			R[berth-pss-$n]=$(( ($(pss "${shims[@]}") + $(pss "${drivers[@]}")) / n ))
			R[berth-pss-shim-$n]=$(( $(pss "${shims[@]}") / n ))
			R[berth-procs-$n]="${#shims[@]} shims, ${#drivers[@]} log daemons"
		fi
		sleep "$SETTLE_S"
		t=$(now); "$berth" apply --repo "$work/empty" --allow-delete-all >/dev/null; R[berth-down-$n]+="$(ms "$t") "
		sleep "$SETTLE_S"

		for i in $(seq 0 $((n - 1))); do
			echo "cmp-$n-$i-web httpd -f -p 8080"
			echo "cmp-$n-$i-sl sleep 3600"
		done >"$work/ctr-$n.list"
		t=$(now); xargs -P 4 -L 1 ctr -a "$work/containerd.sock" -n "$CTRNS" run -d "$IMG" <"$work/ctr-$n.list" >/dev/null; R[ctr-start-$n]+="$(ms "$t") "
		sleep "$SETTLE_S"
		t=$(now)
		cut -d' ' -f1 "$work/ctr-$n.list" | xargs -P 4 -I{} sh -c 'ctr -a "$1" -n "$2" task rm -f "$3" >/dev/null 2>&1 && ctr -a "$1" -n "$2" containers rm "$3"' - "$work/containerd.sock" "$CTRNS" {}
		R[ctr-down-$n]+="$(ms "$t") "
		sleep "$SETTLE_S"

		t=$(now); podman kube play --network "$PNET" "$work/pods-$n.yaml" >/dev/null; R[podman-start-$n]+="$(ms "$t") "
		while [ "$(podman_running)" -lt $((3 * n)) ]; do sleep 0.05; done
		if [ "$rep" = 1 ]; then
			sleep "$SETTLE_S"
			# every conmon on the host: one per container, the pods' infra containers included
			mapfile -t conmons < <(pids_matching "/usr/bin/conmon ")
			R[podman-pss-$n]=$(( $(pss "${conmons[@]}") / n ))
			R[podman-procs-$n]="${#conmons[@]} conmons"
		fi
		sleep "$SETTLE_S"
		t=$(now); podman kube down "$work/pods-$n.yaml" >/dev/null; R[podman-down-$n]+="$(ms "$t") "
		sleep "$SETTLE_S"
	done
done

row() { # label key
	local out="| $1 |" n v
	for n in $SIZES; do
		v=${R[$2-$n]:-}
		if [ -z "$v" ]; then out+=" – |"; else out+=" $(tr ' ' '\n' <<<"$v" | grep . | median) ($(tr ' ' '\n' <<<"$v" | grep . | range)) |"; fi
	done
	echo "$out"
}
ratio() { # label num den
	local out="| $1 |" n a b
	for n in $SIZES; do
		a=$(tr ' ' '\n' <<<"${R[$2-$n]}" | grep . | median)
		b=$(tr ' ' '\n' <<<"${R[$3-$n]}" | grep . | median)
		out+=" $(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.2f×", a/b}') |"
	done
	echo "$out"
}
hdr="| wall time, ms, median (min–max) |"; sep="|---|"
for n in $SIZES; do hdr+=" N=$n |"; sep+="---|"; done
echo
echo "$hdr"; echo "$sep"
row "berth apply, start N pods" berth-start
row "podman kube play, CNI bridge" podman-start
row "berth apply, no change" berth-nochange
row "berth apply, remove all" berth-down
row "podman kube down" podman-down
row "ctr run -d, 4 at a time (raw anchor)" ctr-start
row "ctr task rm -f + container rm, 4 at a time" ctr-down
ratio "start: podman / berth" podman-start berth-start
ratio "teardown: podman / berth" podman-down berth-down
ratio "start: berth / ctr" berth-start ctr-start
echo
hdr="| runtime memory per pod (PSS, KiB) |"; sep="|---|"
for n in $SIZES; do hdr+=" N=$n |"; sep+="---|"; done
echo "$hdr"; echo "$sep"
for k in berth-pss berth-pss-shim podman-pss; do
	out="| $k |"
	for n in $SIZES; do out+=" ${R[$k-$n]} |"; done
	echo "$out"
done
for n in $SIZES; do echo "N=$n: berth ${R[berth-procs-$n]}; podman ${R[podman-procs-$n]}"; done

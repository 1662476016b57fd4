#!/usr/bin/env bash
# Wall time of `berth apply` against a private containerd:
#   - N two-container pods from nothing (image already present),
#   - a no-change apply with those N pods running,
#   - removing all N pods.
# for N in $SIZES (default "1 20"), REPS times each (default 3); prints the
# median and the range in milliseconds.
#
#   bench/apply.sh                    (needs root, bin/berth; make bench builds it)
#   SIZES="1 20 50" REPS=5 bench/apply.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
top=$PWD
berth=$top/bin/berth
SIZES=${SIZES:-1 20}
REPS=${REPS:-3}
[ -x "$berth" ] || { echo "bench: build first (make build)" >&2; exit 1; }

work=$(mktemp -d /tmp/berth-bench.XXXXXX)
pid=
cleanup() {
	if [ -n "$pid" ]; then
		"$berth" apply --repo "$work/empty" --allow-delete-all >/dev/null 2>&1 || true
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	grep -o " $work[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

start_containerd "$work"

export BERTH_NETWORK=berth-bench BERTH_BRIDGE=berthbench0 BERTH_POD_SUBNET=10.252.0.0/16 BERTH_LOG_LEVEL=warn
import_busybox "$work" example.local/busybox:1

mkdir -p "$work/empty"
ms() { local s e; s=$(date +%s%N); "$@" >/dev/null; e=$(date +%s%N); echo $(((e - s) / 1000000)); }
stats() { sort -n | awk '{a[NR]=$1} END {printf "%d (%d–%d)", a[int((NR+1)/2)], a[1], a[NR]}'; }

echo "berth $("$berth" version | cut -d' ' -f2), containerd $(containerd --version | awk '{print $3}'), $(nproc) CPUs, REPS=$REPS"
printf '| pods | apply from nothing (ms) | no-change apply (ms) | remove all (ms) |\n|---|---|---|---|\n'
for n in $SIZES; do
	gen_pods "$work/repo-$n" "$n"
	create=() nochange=() remove=()
	for _ in $(seq "$REPS"); do
		create+=("$(ms "$berth" apply --repo "$work/repo-$n")")
		for _ in 1 2 3; do nochange+=("$(ms "$berth" apply --repo "$work/repo-$n")"); done
		remove+=("$(ms "$berth" apply --repo "$work/empty" --allow-delete-all)")
	done
	printf '| %d | %s | %s | %s |\n' "$n" \
		"$(printf '%s\n' "${create[@]}" | stats)" "$(printf '%s\n' "${nochange[@]}" | stats)" "$(printf '%s\n' "${remove[@]}" | stats)"
done

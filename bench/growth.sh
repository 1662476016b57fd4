#!/usr/bin/env bash
# How berth's cost grows with the number of pods, against a private
# containerd. For N in $SIZES (default "1 10 50 200") two-container pods
# (web = httpd, sleeper = sleep; the workload of bench/apply.sh), REPS times
# each (default 3):
#   create    `berth apply` from nothing (image present; returns when the
#             host has converged)
#   nochange  `berth apply` again with the N pods running (3 per repetition)
#   down      `berth apply` of an empty repository (--allow-delete-all)
# and once per N, with the N pods running:
#   runtime   PSS of berth's shims and log daemons, divided by N (as
#             bench/compare.sh computes it)
#   agent     RSS of `berth agent` started on the same repository with the
#             N pods running, once it reports them all ready and 5 s after
# Prints a table of medians and per-pod figures, writes them to $DATA
# (default docs/growth.tsv) and plots them with gnuplot to $PLOT (default
# docs/growth.svg): flat lines per pod mean the cost per pod does not grow.
#
#   make bench                      (root; builds bin/berth; installs gnuplot-nox if missing)
#   SIZES="1 10 50" REPS=2 bench/growth.sh
#   PLOT_ONLY=1 bench/growth.sh     (plot $DATA again, no measurement)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
top=$PWD
berth=$top/bin/berth
SIZES=${SIZES:-1 10 50 200}
REPS=${REPS:-3}
SETTLE_S=${SETTLE_S:-2}
DATA=${DATA:-docs/growth.tsv}
PLOT=${PLOT:-docs/growth.svg}
[ -x "$berth" ] || { echo "growth: build first (make build)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "growth: run as root" >&2; exit 1; }
if ! command -v gnuplot >/dev/null; then
	echo "growth: installing gnuplot (apt-get install --no-install-recommends gnuplot-nox)" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gnuplot-nox >/dev/null
fi

# plot: $DATA (one row per N) to $PLOT.
plot() {
	gnuplot <<GP
	set terminal svg size 1050,400 dynamic noenhanced font "sans,11" background "white"
	set output "$PLOT"
	set datafile separator "\t"
	set key autotitle columnhead
	set logscale x
	set xtics ($(awk -F'\t' 'NR > 2 {printf "%s\"%s\" %s", sep, $1, $1; sep = ", "}' "$DATA"))
	set xrange [0.8:*]
	set yrange [0:*]
	set grid ytics
	set key below
	set xlabel "pods"
	set multiplot layout 1,3 title "$(sed -n '1s/^# //p' "$DATA"): cost as the number of pods grows"
	set title "wall time per pod (ms)"
	plot "$DATA" using 1:(\$2/\$1) with linespoints lw 2 title "apply from nothing", \
	     "" using 1:(\$4/\$1) with linespoints lw 2 title "teardown", \
	     "" using 1:(\$3/\$1) with linespoints lw 2 title "no-change apply"
	set title "runtime memory per pod (PSS, KiB)"
	plot "$DATA" using 1:5 with linespoints lw 2 title "shims + log daemons"
	set title "berth agent RSS (MiB)"
	plot "$DATA" using 1:(\$6/1024) with linespoints lw 2 title "whole agent"
	unset multiplot
GP
	echo "wrote $PLOT"
}
[ -z "${PLOT_ONLY:-}" ] || { plot; exit; }

work=$(mktemp -d /tmp/berth-growth.XXXXXX)
pid= apid=
stop_agent() {
	if [ -n "$apid" ]; then kill "$apid" 2>/dev/null || true; wait "$apid" 2>/dev/null || true; apid=; fi
}
cleanup() {
	set +e
	stop_agent
	if [ -n "$pid" ]; then
		"$berth" apply --repo "$work/empty" --allow-delete-all >/dev/null 2>&1
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	grep -o " $work[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
	ip link delete berthgrow0 2>/dev/null
	remove_namespace_dirs bench
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

start_containerd "$work"
export BERTH_NETWORK=berth-growth BERTH_BRIDGE=berthgrow0 BERTH_POD_SUBNET=10.251.0.0/16 BERTH_LOG_LEVEL=warn
import_busybox "$work" example.local/busybox:1
mkdir -p "$work/empty"
sock=$work/berth/agent.sock

ms() { local s e; s=$(date +%s%N); "$@" >/dev/null; e=$(date +%s%N); echo $(((e - s) / 1000000)); }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
range() { sort -n | awk '{a[NR]=$1} END {printf "%d–%d", a[1], a[NR]}'; }
ready_pods() { curl -fsS --unix-socket "$sock" http://agent/status 2>/dev/null | jq '[.pods[] | select(.ready)] | length' 2>/dev/null || echo 0; }

# agent_rss N: start the agent on repo-N with its N pods running, wait
# until it reports them all ready, print its RSS in KiB 5 s later and stop
# it (the pods keep running).
agent_rss() {
	"$berth" agent --repo "$work/repo-$1" --interval 1h --health-settle 1s >/dev/null 2>"$work/agent-$1.log" &
	apid=$!
	local ok=
	for _ in $(seq 3000); do
		[ "$(ready_pods)" = "$1" ] && { ok=1; break; }
		kill -0 "$apid" 2>/dev/null || break
		sleep 0.1
	done
	[ -n "$ok" ] || { echo "growth: the agent did not report $1 pods ready in 300 s" >&2; tail -5 "$work/agent-$1.log" >&2; exit 1; }
	sleep 5
	awk '/VmRSS/ {print $2}' "/proc/$apid/status"
	stop_agent
	rm -f "$work/berth/last-"*.json "$work/berth/bad-revisions.json"
}

header="berth $("$berth" version | cut -d' ' -f2), containerd $(containerd --version | awk '{print $3}'), $(nproc) CPUs, REPS=$REPS"
echo "$header, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '# %s\npods\tcreate_ms\tnochange_ms\tdown_ms\truntime_pss_kib_per_pod\tagent_rss_kib\n' "$header" >"$DATA"
declare -A R
med() { tr ' ' '\n' <<<"${R[$1]}" | grep . | median; }
rng() { tr ' ' '\n' <<<"${R[$1]}" | grep . | range; }
for n in $SIZES; do
	gen_pods "$work/repo-$n" "$n"
	for rep in $(seq "$REPS"); do
		R[create-$n]+="$(ms "$berth" apply --repo "$work/repo-$n") "
		for _ in 1 2 3; do R[nochange-$n]+="$(ms "$berth" apply --repo "$work/repo-$n") "; done
		if [ "$rep" = 1 ]; then
			sleep "$SETTLE_S"
			mapfile -t shims < <(berth_shims "$work")
			mapfile -t drivers < <(berth_log_drivers "$work")
			R[pss-$n]=$((($(pss "${shims[@]}") + $(pss "${drivers[@]}")) / n))
			R[procs-$n]="${#shims[@]} shims, ${#drivers[@]} log daemons"
			R[agent-$n]=$(agent_rss "$n")
		fi
		R[down-$n]+="$(ms "$berth" apply --repo "$work/empty" --allow-delete-all) "
	done
	printf '%d\t%d\t%d\t%d\t%d\t%d\n' "$n" "$(med "create-$n")" "$(med "nochange-$n")" "$(med "down-$n")" "${R[pss-$n]}" "${R[agent-$n]}" >>"$DATA"
	echo "N=$n done ($(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg); ${R[procs-$n]})" >&2
done

printf '\n| pods | apply from nothing (ms) | per pod | no-change apply (ms) | teardown (ms) | per pod | runtime PSS per pod (KiB) | agent RSS (MiB) |\n'
printf '|---:|---|---:|---|---|---:|---:|---:|\n'
for n in $SIZES; do
	c=$(med "create-$n") z=$(med "nochange-$n") d=$(med "down-$n")
	printf '| %d | %d (%s) | %.0f | %d (%s) | %d (%s) | %.0f | %d | %.1f |\n' "$n" \
		"$c" "$(rng "create-$n")" "$(awk -v a="$c" -v n="$n" 'BEGIN {print a / n}')" \
		"$z" "$(rng "nochange-$n")" "$d" "$(rng "down-$n")" "$(awk -v a="$d" -v n="$n" 'BEGIN {print a / n}')" \
		"${R[pss-$n]}" "$(awk -v k="${R[agent-$n]}" 'BEGIN {print k / 1024}')"
done
plot


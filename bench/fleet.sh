#!/usr/bin/env bash
# A fleet on one machine: one Git server (git daemon) and one MQTT broker
# (mosquitto) on loopback, and N berth agents (default 500) with distinct
# node names, each with its own state directory, driving the SIMULATED
# runtime (--runtime sim: pods live in memory, nothing runs; the real
# runtime, containerd, stays the default). CANARY devices (default 5) carry
# ring=canary. It measures a three-wave rollout end to end:
#   - v1 (no rollout policy) converges on every device;
#   - v2 with berth-rollout.yaml (canary by label, early 10 %, rest) rolls
#     out; each wave's first device turns healthy only after the previous
#     wave's last one plus its soak (from the devices' reported times);
#   - v3, whose pod exits 7, fails on a canary: the rollout halts (for
#     the other canaries too, maxFailures being 0) and no device of a
#     later wave changes;
#   - Git requests per second per 100 devices over the run, at INTERVAL
#     with jitter (and scaled to a 5-minute interval), the PUBLISH messages
#     the broker delivered to the agents during the rollout (apart from
#     this script's own fleet status reads), and memory and CPU per agent.
#
#   bench/fleet.sh                      (needs bin/berth, git, mosquitto, mosquitto_sub, jq)
#   N=100 INTERVAL=20s SOAK=15 bench/fleet.sh
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
berth=$top/bin/berth
N=${N:-500}
CANARY=${CANARY:-5}
INTERVAL=${INTERVAL:-30s}
JITTER=${JITTER:-0.5}
SOAK=${SOAK:-20}
[ -x "$berth" ] || { echo "bench: build first (make build)" >&2; exit 1; }
for t in git mosquitto mosquitto_sub jq; do
	command -v "$t" >/dev/null || [ -x "/usr/sbin/$t" ] || { echo "bench: $t is missing (scripts/install-deps.sh)" >&2; exit 1; }
done
avail_mib=$(awk '/MemAvailable/ {print int($2/1024)}' /proc/meminfo)
if [ $((N * 40)) -gt "$avail_mib" ]; then
	echo "bench: $N agents need about $((N * 40)) MiB, $avail_mib MiB available; lower N" >&2
	exit 1
fi
ulimit -n 65536 2>/dev/null || true

work=$(mktemp -d /tmp/berth-bench-fleet.XXXXXX)
pids=() gpid= mpid=
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	[ -n "$gpid" ] && { kill "$gpid" 2>/dev/null || true; wait "$gpid" 2>/dev/null || true; }
	[ -n "$mpid" ] && { kill "$mpid" 2>/dev/null || true; wait "$mpid" 2>/dev/null || true; }
	rm -rf "$work"
}
trap cleanup EXIT
trap "exit 1" INT TERM

free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 30000))
		(: <"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# Git: a bare repository served by git daemon, which logs every request.
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@localhost GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@localhost
mkdir -p "$work/srv" "$work/repo"
git init -q --bare -b main "$work/srv/fleet.git"
git -C "$work/repo" init -q -b main
pod() { # pod COMMAND: the web Pod running COMMAND
	cat >"$work/repo/web.yaml" <<YAML
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - {name: main, image: example.local/web:1, command: ["sh", "-c", "$1"]}
YAML
}
commit() { git -C "$work/repo" add -A && git -C "$work/repo" commit -qm "$1" && git -C "$work/repo" push -q "$work/srv/fleet.git" main && git -C "$work/repo" rev-parse HEAD; }
gport=$(free_port)
git daemon --reuseaddr --verbose --base-path="$work/srv" --export-all --listen=127.0.0.1 --port="$gport" --max-connections=0 "$work/srv" >"$work/gitd.log" 2>&1 &
gpid=$!

# MQTT: mosquitto with room for every device's retained status.
mport=$(free_port)
cat >"$work/mosquitto.conf" <<CONF
user root
persistence false
listener $mport 127.0.0.1
allow_anonymous true
max_queued_messages 100000
max_inflight_messages 1000
sys_interval 1
log_dest file $work/mosquitto.log
CONF
mosquitto -c "$work/mosquitto.conf" &
mpid=$!
broker=mqtt://127.0.0.1:$mport
sleep 0.5

pod "sleep 100000"
c1=$(commit v1)

# The agents, started 50 at a time.
echo "starting $N agents (simulated runtime; $CANARY canaries; interval $INTERVAL, jitter $JITTER)" >&2
t_start=$(now)
for i in $(seq 1 "$N"); do
	name=$(printf dev-%04d "$i")
	labels=()
	[ "$i" -le "$CANARY" ] && labels=(--node-label ring=canary)
	mkdir -p "$work/s/$i"
	GOMEMLIMIT=24MiB "$berth" agent --runtime sim --repo "git://127.0.0.1:$gport/fleet.git" --state-dir "$work/s/$i" \
		--node-name "$name" "${labels[@]}" --mqtt "$broker" --fleet bench \
		--interval "$INTERVAL" --jitter "$JITTER" --health-settle 1s --crash-restarts 1 --health-deadline 60s \
		--log-level warn >"$work/s/$i/log" 2>&1 &
	pids+=($!)
	if [ $((i % 50)) -eq 0 ]; then sleep 1; fi
done

fleet_json() {
	echo >>"$work/reads" # each read receives N statuses, N presence flags and its marker
	"$berth" fleet status --mqtt "$broker" --fleet bench -o json --timeout 30s 2>/dev/null
}
# sys COUNTER: one of mosquitto's $SYS counters (updated every second).
sys() { mosquitto_sub -p "$mport" -h 127.0.0.1 -C 1 -W 5 -t "\$SYS/broker/$1" 2>/dev/null || echo 0; }
reads() { wc -l <"$work/reads" 2>/dev/null || echo 0; }
# wait_for WHAT JQ-CONDITION SECONDS: poll berth fleet status until the
# condition on its JSON holds.
wait_for() {
	local deadline=$(($(date +%s) + $3))
	while [ "$(date +%s)" -lt "$deadline" ]; do
		if fleet_json >"$work/fleet.json" && jq -e "$2" "$work/fleet.json" >/dev/null; then return 0; fi
		sleep 2
	done
	echo "bench: timed out waiting for $1" >&2
	jq -c '.groups[] | {revision: .revision[0:12], wave, devices, healthy, failed, pending, offline}' "$work/fleet.json" >&2 || true
	exit 1
}

wait_for "v1 on every device" "[.status[] | select(.lastGood == \"$c1\" and .online)] | length == $N" 900
echo "v1 (no policy): $N devices healthy $(since "$t_start") s after the first agent started" >&2
git_before=$(grep -c 'Request upload-pack' "$work/gitd.log" || true)
t_git=$(now)

# v2 with the rollout policy.
cat >"$work/repo/berth-rollout.yaml" <<YAML
waves:
- {name: canary, selector: {matchLabels: {ring: canary}}, soak: ${SOAK}s}
- {name: early, percent: 10, soak: ${SOAK}s}
- {name: rest, percent: 100}
maxFailures: 0
YAML
pod "sleep 100001"
sleep 1.1 # the $SYS counters are a second old
pub_out0=$(sys publish/messages/sent) reads0=$(reads)
c2=$(commit "v2: policy")
t2=$(now)
wait_for "v2 on every device" "[.status[] | select(.lastGood == \"$c2\")] | length == $N" 1800
t_v2=$(since "$t2")
echo "v2 (three waves, soak ${SOAK}s): $N devices healthy $t_v2 s after the push" >&2
jq -r --argjson soak "$SOAK" '
  [.status[] | {wave, i: .waveIndex, t: (.goodSince | sub("\\.[0-9]+"; "") | fromdateiso8601)}]
  | group_by(.i) | map({wave: .[0].wave, i: .[0].i, n: length, first: (map(.t) | min), last: (map(.t) | max)})
  | . as $w | range(0; length) as $k
  | $w[$k] + {gap: (if $k > 0 then $w[$k].first - $w[$k-1].last else null end)}
  | "  wave \(.wave): \(.n) devices healthy between +\(.first - $w[0].first) s and +\(.last - $w[0].first) s"
    + (if .gap == null then "" else "; started \(.gap) s after the previous wave completed (soak \($soak) s): " + (if .gap >= $soak then "ok" else "TOO EARLY" end) end)
' "$work/fleet.json" | tee "$work/waves.txt" >&2
sleep 1.1
pub_out1=$(sys publish/messages/sent) reads1=$(reads)
awk -v o=$((pub_out1 - pub_out0)) -v r=$((reads1 - reads0)) -v n="$N" 'BEGIN {
	# Deliveries to the fleet status reads of this script are not the traffic of the fleet.
	a = o - r * (2 * n + 1)
	printf "broker during v2: %d PUBLISH messages delivered to the agents (%.1f per device; %d more to %d fleet status reads of this script)\n", a, a / n, o - a, r
}' | tee "$work/v2-broker.txt" >&2
if grep -q "TOO EARLY" "$work/waves.txt"; then echo "bench: a wave started before the previous one's soak ended" >&2; exit 1; fi

# v3 fails on the canaries: the rollout halts.
pod "exit 7"
c3=$(commit "v3: crashes")
t3=$(now)
# The first canary to fail halts the rollout for everyone else, the
# other canaries included.
wait_for "a canary to fail v3 and every other device to halt" \
	"([.status[] | select(.failed // [] | index(\"$c3\"))] | length) as \$f | \$f >= 1 and ([.status[] | select(.rollout == \"halted\")] | length) == $N - \$f" 900
failed=$(jq --arg c3 "$c3" '[.status[] | select(.failed // [] | index($c3))] | length' "$work/fleet.json")
changed=$(jq --arg c2 "$c2" '[.status[] | select(.wave != "canary" and .applied != $c2)] | length' "$work/fleet.json")
echo "v3 (fails): $failed canaries rolled it back, $((N - failed)) devices halted $(since "$t3") s after the push; devices of later waves changed: $changed" >&2
[ "$changed" -eq 0 ] || { echo "bench: devices of later waves changed in a halted rollout" >&2; exit 1; }

# Git requests over the rollout, per 100 devices.
git_after=$(grep -c 'Request upload-pack' "$work/gitd.log" || true)
dur=$(since "$t_git")
awk -v r=$((git_after - git_before)) -v d="$dur" -v n="$N" -v iv="$INTERVAL" -v j="$JITTER" 'BEGIN {
	rate = r / d / (n / 100); secs = iv + 0; if (iv ~ /m$/) secs *= 60
	# The mean wait is the interval plus half the jitter; scaled to the
	# default 5-minute case with the default 10 % jitter of agents.
	scaled = rate * secs * (1 + j / 2) / (300 * 1.05)
	printf "git: %d upload-pack requests in %.0f s: %.2f per second per 100 devices at %s (jitter %s); %.2f at 5m (jitter 0.1)\n", r, d, rate, iv, j, scaled
}' >&2

# Broker traffic, from mosquitto's own counters.
mosquitto_sub -p "$mport" -h 127.0.0.1 -v -C 4 -W 5 -t '$SYS/broker/publish/messages/sent' \
	-t '$SYS/broker/messages/sent' -t '$SYS/broker/clients/connected' -t '$SYS/broker/load/publish/sent/1min' 2>/dev/null | sed 's/^/broker: /' >&2 || true
awk '/^VmRSS/ {print "broker: RSS " int($2/1024) " MiB"}' "/proc/$mpid/status" >&2

# Memory and CPU per agent.
rss=0 cpu=0
tck=$(getconf CLK_TCK)
for p in "${pids[@]}"; do
	r=$(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
	c=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)
	rss=$((rss + r)) cpu=$((cpu + c))
done
awk -v r="$rss" -v c="$cpu" -v n="$N" -v t="$tck" -v d="$(since "$t_start")" 'BEGIN {
	printf "agents: %.1f MiB RSS each on average (%.0f MiB for %d); CPU %.2f s each over %.0f s\n", r / n / 1024, r / 1024, n, c / t / n, d
}' >&2

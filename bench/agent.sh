#!/usr/bin/env bash
# berth agent against a private containerd:
#   - push → pod replaced, through a webhook (git daemon on loopback, the
#     agent fetching over git://), and through a local directory source
#     (fsnotify, 200 ms debounce): REPS changes each, milliseconds from the
#     push (or the file write) until the agent reports the new pod ready;
#   - an idle agent managing N pods (default 50): RSS and CPU time used
#     over IDLE seconds (default 120) with the default 1 m poll interval;
#     RSS is split into anonymous memory (the agent's own) and file-backed
#     pages (the berth binary's code, shared with every berth process);
#   - with those N pods: a container killed (SIGKILL) → its new task
#     running, REPS times (the first restart has no backoff), and a
#     Deployment of 3 (maxSurge 1, maxUnavailable 0, no probes) changed in
#     the directory → 3 new pods running and the old ones gone; both timed
#     by containerd's event stream (`ctr events`), not by the polling.
#
#   bench/agent.sh                    (needs root and bin/berth; make bench-agent builds it)
#   REPS=10 N=50 IDLE=600 bench/agent.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
top=$PWD
berth=$top/bin/berth
REPS=${REPS:-5}
N=${N:-50}
IDLE=${IDLE:-120}
[ -x "$berth" ] || { echo "bench: build first (make build)" >&2; exit 1; }

work=$(mktemp -d /tmp/berth-bench-agent.XXXXXX)
pid= apid= gpid= epid=
stop_agent() {
	if [ -n "$apid" ]; then kill "$apid" 2>/dev/null || true; wait "$apid" 2>/dev/null || true; apid=; fi
}
cleanup() {
	stop_agent
	if [ -n "$epid" ]; then kill "$epid" 2>/dev/null || true; wait "$epid" 2>/dev/null || true; fi
	if [ -n "$gpid" ]; then kill "$gpid" 2>/dev/null || true; wait "$gpid" 2>/dev/null || true; fi
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

export BERTH_NETWORK=berth-bench BERTH_BRIDGE=berthbench0 BERTH_POD_SUBNET=10.252.0.0/16 BERTH_LOG_LEVEL=${BERTH_LOG_LEVEL:-warn}
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@localhost GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@localhost
import_busybox "$work" example.local/busybox:1
mkdir -p "$work/empty"
sock=$work/berth/agent.sock

pod() { # pod DIR NAME ARG
	cat >"$1/$2.yaml" <<YAML
apiVersion: v1
kind: Pod
metadata:
  name: $2
spec:
  terminationGracePeriodSeconds: 5
  containers:
    - name: sleeper
      image: example.local/busybox:1
      command: ["sh", "-c", "trap 'exit 0' TERM; sleep $3 & wait"]
YAML
}
status() { curl -fsS --unix-socket "$sock" http://agent/status 2>/dev/null || true; }
wait_ready() { # wait_ready: until the agent answered its first pass
	for _ in $(seq 600); do [ -n "$(status | jq -r '.lastPass // empty' 2>/dev/null)" ] && return; sleep 0.05; done
	echo "bench: agent not ready" >&2; exit 1
}
# wait_pod NAME REVISION-PREFIX: until pod NAME runs that revision, ready.
wait_pod() {
	for _ in $(seq 3000); do
		status | jq -e --arg n "$1" --arg r "$2" '.pods[] | select(.id.name == $n and (.revision | startswith($r)) and .ready)' >/dev/null 2>&1 && return
		sleep 0.01
	done
	echo "bench: pod $1 never reached $2" >&2; exit 1
}
now() { date +%s%N; }
stats() { sort -n | awk '{a[NR]=$1} END {printf "%d (%d–%d)", a[int((NR+1)/2)], a[1], a[NR]}'; }

echo "berth $("$berth" version | cut -d' ' -f2), containerd $(containerd --version | awk '{print $3}'), $(nproc) CPUs, REPS=$REPS"

# 1. Webhook: git daemon on loopback, the agent fetching over git://.
mkdir -p "$work/srv" "$work/work"
git init -q --bare -b main "$work/srv/repo.git"
git -C "$work/work" init -q -b main
pod "$work/work" web 3600
git -C "$work/work" add -A && git -C "$work/work" commit -qm v0 && git -C "$work/work" push -q "$work/srv/repo.git" main
port=$((20000 + RANDOM % 20000))
git daemon --reuseaddr --base-path="$work/srv" --export-all --listen=127.0.0.1 --port=$port "$work/srv" >"$work/gitd.log" 2>&1 &
gpid=$!
sleep 0.3
echo bench-secret >"$work/secret"
hport=$((port + 1))
"$berth" agent --repo "git://127.0.0.1:$port/repo.git" --interval 1h --health-settle 1s \
	--webhook-secret-file "$work/secret" --listen "127.0.0.1:$hport" 2>"$work/agent-webhook.log" &
apid=$!
wait_ready
wait_pod web ""
hook=()
for i in $(seq "$REPS"); do
	pod "$work/work" web $((3600 + i))
	git -C "$work/work" commit -qam "v$i"
	t0=$(now)
	git -C "$work/work" push -q "$work/srv/repo.git" main
	curl -fsS -o /dev/null -X POST -H "X-Gitlab-Token: bench-secret" -H "X-Gitlab-Event-UUID: $i" \
		--data '{}' "http://127.0.0.1:$hport/hooks/git"
	wait_pod web "$(git -C "$work/work" rev-parse HEAD)"
	hook+=($((($(now) - t0) / 1000000)))
done
stop_agent
"$berth" apply --repo "$work/empty" --allow-delete-all >/dev/null
rm -f "$work/berth/last-"*.json "$work/berth/bad-revisions.json"

# 2. Local directory source: fsnotify, debounced.
mkdir -p "$work/dir"
pod "$work/dir" web 3600
"$berth" agent --repo "$work/dir" --interval 1h --health-settle 1s 2>"$work/agent-dir.log" &
apid=$!
wait_ready
wait_pod web ""
local_=()
for i in $(seq "$REPS"); do
	before=$(status | jq -r '.pods[] | select(.id.name == "web") | .revision')
	t0=$(now)
	pod "$work/dir" web $((3600 + i))
	for _ in $(seq 3000); do
		status | jq -e --arg b "$before" '.pods[] | select(.id.name == "web" and .revision != $b and .ready)' >/dev/null 2>&1 && break
		sleep 0.01
	done
	local_+=($((($(now) - t0) / 1000000)))
done
stop_agent
printf '\n| push → pod replaced and ready (ms) | median (min–max) |\n|---|---|\n'
printf '| webhook (git daemon, git://) | %s |\n' "$(printf '%s\n' "${hook[@]}" | stats)"
printf '| local directory (fsnotify, 200 ms debounce) | %s |\n' "$(printf '%s\n' "${local_[@]}" | stats)"

# 3. Idle agent with N pods, default interval and resync.
"$berth" apply --repo "$work/empty" --allow-delete-all >/dev/null
rm -f "$work/berth/last-"*.json "$work/berth/bad-revisions.json"
rm -rf "$work/dir" && mkdir -p "$work/dir"
for i in $(seq "$N"); do pod "$work/dir" "pod-$i" 3600; done
"$berth" agent --repo "$work/dir" --health-settle 1s 2>"$work/agent-idle.log" &
apid=$!
wait_ready
settled=
for _ in $(seq 1200); do
	if [ "$(status | jq '[.pods[] | select(.ready)] | length')" = "$N" ] && [ "$(status | jq -r '.lastGood.commit // empty')" != "" ]; then
		settled=1
		break
	fi
	sleep 0.1
done
[ -n "$settled" ] || { echo "bench: $N pods not ready and good within 120 s" >&2; exit 1; }
sleep 5
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$apid/stat"; }
c0=$(cpu)
sleep "$IDLE"
c1=$(cpu)
rss=$(awk '/VmRSS/ {print $2}' "/proc/$apid/status")
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$apid/status")
anon=$(awk '/RssAnon/ {print $2}' "/proc/$apid/status")
file=$(awk '/RssFile/ {print $2}' "/proc/$apid/status")
cpu_s=$(awk -v d=$((c1 - c0)) -v t="$ticks" 'BEGIN {printf "%.2f", d / t}')
per10=$(awk -v d=$((c1 - c0)) -v t="$ticks" -v w="$IDLE" 'BEGIN {printf "%.2f", d / t * 600 / w}')
printf '\n| idle agent, %d pods | value |\n|---|---|\n' "$N"
printf '| RSS now / peak (MiB) | %.1f / %.1f |\n' "$(awk -v k="$rss" 'BEGIN {print k / 1024}')" "$(awk -v k="$hwm" 'BEGIN {print k / 1024}')"
printf '| RSS anonymous / file-backed (MiB) | %.1f / %.1f |\n' "$(awk -v k="$anon" 'BEGIN {print k / 1024}')" "$(awk -v k="$file" 'BEGIN {print k / 1024}')"
printf '| CPU over %d s (s) | %s |\n' "$IDLE" "$cpu_s"
printf '| CPU per 10 min, extrapolated (s) | %s |\n' "$per10"

# 4. Exit → restart, with the N pods under the agent. The times come from
# containerd's own event stream (`ctr events`, stamped by containerd as it
# publishes): /tasks/exit of the killed task → /tasks/start of the new one,
# so the figure is not the polling's cost; polling only says when to look.
ctr -a "$BERTH_CONTAINERD_ADDRESS" events >"$work/events.txt" 2>/dev/null &
epid=$!
# event_ns TOPIC PATTERN [AFTER-NS]: the time (ns since the epoch) of the
# first event on TOPIC whose payload matches PATTERN (an extended regular
# expression), at or after AFTER-NS.
event_ns() {
	local line
	while read -r line; do
		local ns
		ns=$(date -d "$(echo "$line" | awk '{print $1" "$2}')" +%s%N)
		[ "$ns" -ge "${3:-0}" ] && { echo "$ns"; return; }
	done < <(awk -v t="$1" '$6 == t' "$work/events.txt" | grep -E -- "$2")
}
# task_of POD: "ID PID" of the running task of POD's sleeper container.
# A restart makes the new instance under the container's other ID
# ("<id>" and "<id>.1"), so both are looked at.
task_of() {
	ctr -a "$BERTH_CONTAINERD_ADDRESS" -n bench tasks ls 2>/dev/null |
		awk -v re="^default_$1_sleeper(\\.1)?$" '$1 ~ re && $3 == "RUNNING" {print $1, $2}' | head -1
}
restart=()
for i in $(seq "$REPS"); do
	read -r cid old < <(task_of "pod-$i") || true
	[ -n "${old:-}" ] || { echo "bench: no task for pod-$i" >&2; exit 1; }
	kill -9 "$old"
	ncid= new=
	for _ in $(seq 3000); do
		read -r ncid new < <(task_of "pod-$i") || true
		[ -n "$new" ] && [ "$new" != "$old" ] && break
		sleep 0.005
	done
	for _ in $(seq 100); do grep -q "/tasks/start .*\"$ncid\".*\"pid\":$new[,}]" "$work/events.txt" && break; sleep 0.02; done
	died=$(event_ns /tasks/exit "\"container_id\":\"$cid\".*\"pid\":$old,")
	started=$(event_ns /tasks/start "\"container_id\":\"$ncid\".*\"pid\":$new[,}]")
	[ -n "$died" ] && [ -n "$started" ] || { echo "bench: no exit or start event for $cid → $ncid" >&2; exit 1; }
	restart+=($(((started - died) / 1000000)))
	# The next kill must not fall in this container's backoff: use another pod.
done
printf '\n| with %d pods under the agent | median (min–max) |\n|---|---|\n' "$N"
printf '| container exit → its new task started, containerd events (ms) | %s |\n' "$(printf '%s\n' "${restart[@]}" | stats)"

# 5. A Deployment of 3 changed in the directory → all-new pods running and
# the old ones gone. The agent's API says when to look; the end is the
# later of the last new container's /tasks/start and the last old
# container's /containers/delete in containerd's events.
deploy() { # deploy ARG
	cat >"$work/dir/web.yaml" <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  strategy: {rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: main
          image: example.local/busybox:1
          command: ["sh", "-c", "trap 'exit 0' TERM; sleep $1 & wait"]
YAML
}
web_pods() { status | jq -r '.pods[] | select((.owner // "") | test("^Deployment/[^/]*/web$")) | "\(.id.name) \(.containers[0].state)"'; }
deploy 3600
for _ in $(seq 600); do [ "$(web_pods | grep -c Running)" = 3 ] && break; sleep 0.1; done
[ "$(web_pods | grep -c Running)" = 3 ] || { echo "bench: the Deployment's first pods did not run" >&2; exit 1; }
roll=()
for i in $(seq "$REPS"); do
	old=$(web_pods | awk '{print $1}' | sort | tr '\n' ' ')
	t0=$(now)
	deploy $((7200 + i))
	done_=
	for _ in $(seq 3000); do
		cur=$(web_pods)
		if [ "$(echo "$cur" | grep -c Running)" = 3 ] && [ "$(echo "$cur" | wc -l)" = 3 ]; then
			overlap=
			for o in $old; do echo "$cur" | grep -q "^$o " && overlap=1; done
			[ -z "$overlap" ] && { done_=1; break; }
		fi
		sleep 0.01
	done
	[ -n "$done_" ] || { echo "bench: the Deployment did not roll" >&2; exit 1; }
	end=0
	for p in $(echo "$cur" | awk '{print $1}'); do
		for _ in $(seq 100); do grep -q "/tasks/start .*\"default_${p}_main\"" "$work/events.txt" && break; sleep 0.02; done
		ns=$(event_ns /tasks/start "\"container_id\":\"default_${p}_main\"" "$t0")
		[ -n "$ns" ] && [ "$ns" -gt "$end" ] && end=$ns
	done
	for p in $old; do
		for _ in $(seq 100); do grep -q "/containers/delete .*\"default_${p}_main\"" "$work/events.txt" && break; sleep 0.02; done
		ns=$(event_ns /containers/delete "\"id\":\"default_${p}_main\"" "$t0")
		[ -n "$ns" ] && [ "$ns" -gt "$end" ] && end=$ns
	done
	[ "$end" -gt 0 ] || end=$(now)
	roll+=($(((end - t0) / 1000000)))
done
printf '| Deployment of 3 changed in the directory → 3 new pods started, old ones deleted, containerd events (ms) | %s |\n' "$(printf '%s\n' "${roll[@]}" | stats)"

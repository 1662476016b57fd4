#!/usr/bin/env bash
# Wall time and peak memory of a fleet preview with the real binary:
#   berth plan --repo R --base main --head feature --inventory FILE -o markdown
# over a Git repository of 50 objects (per label group a Pod, a DaemonSet
# and its ConfigMap; ten Deployments with their Secrets) and DEVICES
# devices (default 500) in ten label groups. The head commit changes every
# group's Pod image, one ConfigMap, one Secret and one Deployment's
# replicas. REPS runs (default 5); prints the median and range of the wall
# time in milliseconds, the median CPU time (user + system; steadier than
# wall time on a busy machine) and the largest peak RSS in MiB.
# FORMAT=cue writes each group's Pod as a CUE file included only on its
# group's devices (@if(gN), the devices of group gN having the label gN=true), so each revision is evaluated once
# per group instead of once.
#
#   bench/plan.sh                  (needs bin/berth; make build builds it)
#   DEVICES=2000 REPS=3 bench/plan.sh
#   FORMAT=cue bench/plan.sh
set -euo pipefail
cd "$(dirname "$0")/.."
berth=$PWD/bin/berth
DEVICES=${DEVICES:-500}
REPS=${REPS:-5}
FORMAT=${FORMAT:-yaml}
[ -x "$berth" ] || { echo "bench: build first (make build)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench: needs /usr/bin/time (Debian package time)" >&2; exit 1; }

work=$(mktemp -d /tmp/berth-bench-plan.XXXXXX)
trap 'rm -rf "$work"' EXIT
repo=$work/repo
mkdir -p "$repo"
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 \
	GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@localhost GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@localhost
git -C "$repo" init -q -b main

# write_repo TAG CONF SECRET REPLICAS
write_repo() {
	local tag=$1 conf=$2 secret=$3 replicas=$4 g i c s r
	for g in $(seq 0 9); do
		mkdir -p "$repo/group-$g"
		if [ "$FORMAT" = cue ]; then
			cat >"$repo/group-$g/pod.cue" <<CUE
@if(g$g)

package group$g

edge: {
	apiVersion: "v1"
	kind:       "Pod"
	metadata: {name: "edge-$g", labels: app: "edge"}
	spec: {
		nodeSelector: group: "g$g"
		containers: [{
			name:  "main"
			image: "example.local/edge:$tag"
			args: ["serve", "--group", "g$g"]
			env: [{name: "GROUP", value: "g$g"}]
			resources: limits: {memory: "64Mi", cpu: "100m"}
		}]
	}
}
CUE
		else
		cat >"$repo/group-$g/pod.yaml" <<YAML
apiVersion: v1
kind: Pod
metadata: {name: edge-$g, labels: {app: edge}}
spec:
  nodeSelector: {group: g$g}
  containers:
  - name: main
    image: example.local/edge:$tag
    args: [serve, --group, g$g]
    env: [{name: GROUP, value: g$g}]
    resources: {limits: {memory: 64Mi, cpu: 100m}}
YAML
		fi
		cat >"$repo/group-$g/agent.yaml" <<YAML
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent-$g}
spec:
  selector: {matchLabels: {app: agent-$g}}
  template:
    metadata: {labels: {app: agent-$g}}
    spec:
      nodeSelector: {group: g$g}
      containers:
      - name: agent
        image: example.local/agent:2
        volumeMounts: [{name: conf, mountPath: /etc/agent}]
      volumes: [{name: conf, configMap: {name: agent-$g}}]
YAML
		c="listen 80;"; [ "$g" = 0 ] && c=$conf
		cat >"$repo/group-$g/config.yaml" <<YAML
apiVersion: v1
kind: ConfigMap
metadata: {name: agent-$g}
data:
  agent.conf: |
    # agent configuration for group $g
    $c
    log debug;
YAML
	done
	mkdir -p "$repo/apps"
	for i in $(seq 0 9); do
		r=2; [ "$i" = 0 ] && r=$replicas
		s=s3cr3t-a; [ "$i" = 0 ] && s=$secret
		cat >"$repo/apps/app-$i.yaml" <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: app-$i}
spec:
  replicas: $r
  selector: {matchLabels: {app: app-$i}}
  template:
    metadata: {labels: {app: app-$i}}
    spec:
      containers:
      - name: app
        image: example.local/app-$i:1
        envFrom: [{secretRef: {name: app-$i}}]
YAML
		cat >"$repo/apps/secret-$i.yaml" <<YAML
apiVersion: v1
kind: Secret
metadata: {name: app-$i}
stringData: {TOKEN: $s}
YAML
	done
}
write_repo 1.27 "listen 80;" s3cr3t-a 2
git -C "$repo" add -A && git -C "$repo" commit -q -m base
git -C "$repo" checkout -q -b feature
write_repo 1.28 "listen 8080;" s3cr3t-b 3
git -C "$repo" add -A && git -C "$repo" commit -q -m head

{
	echo "devices:"
	for i in $(seq 0 $((DEVICES - 1))); do
		printf '  - {name: device-%04d, labels: {group: g%d, site: site-%d, g%d: "true"}}\n' "$i" $((i % 10)) $((i % 7)) $((i % 10))
	done
} >"$work/inventory.yaml"

"$berth" vet "$repo" >/dev/null 2>&1
times=() cpus=() peak=0
for rep in $(seq "$REPS"); do
	code=0
	/usr/bin/time -f '%e %M %U %S' -o "$work/time" "$berth" plan --repo "$repo" --base main --head feature \
		--inventory "$work/inventory.yaml" -o markdown --state-dir "$work/state" --log-level error >"$work/out.md" || code=$?
	[ "$code" = 2 ] || { echo "bench: plan exited $code, want 2" >&2; cat "$work/out.md" >&2; exit 1; }
	read -r secs kib user sys < <(tail -n 1 "$work/time")
	times+=("$(awk -v s="$secs" 'BEGIN { printf "%d", s * 1000 }')")
	cpus+=("$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%d", (u + s) * 1000 }')")
	((kib > peak)) && peak=$kib
done
grep -q "^\*\*$DEVICES of $DEVICES devices change" "$work/out.md" || { echo "bench: unexpected report" >&2; head -20 "$work/out.md" >&2; exit 1; }
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
median=$(echo "$sorted" | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
cpu=$(printf '%s\n' "${cpus[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
printf 'plan --inventory: %d devices, 50 objects (%s): wall %s ms (%s–%s), CPU %s ms, peak RSS %d MiB\n' \
	"$DEVICES" "$FORMAT" "$median" "$(echo "$sorted" | head -1)" "$(echo "$sorted" | tail -1)" "$cpu" $((peak / 1024))

#!/usr/bin/env bash
# Validation cost of `berth vet` on generated repositories of N objects
# (default 1000): Deployments and Pods with env, ports, probes, resources and
# volumes, 10 per file,
#   - as YAML (N/10 files),
#   - as CUE (10 packages of N/10 objects, built from a template that
#     imports berth.dev/k8s), evaluated in berth's sandboxed child process;
# REPS times each (default 5). Prints the median and the range of the wall
# time, and the largest peak RSS of any berth process (the command or its
# CUE child), from GNU time.
#
#   make bench-vet, or bench/vet.sh   (needs bin/berth; make build builds it)
#   N=2000 REPS=3 bench/vet.sh
set -euo pipefail
cd "$(dirname "$0")/.."
berth=$PWD/bin/berth
N=${N:-1000}
REPS=${REPS:-5}
[ -x "$berth" ] || { echo "bench: build first (make build)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench: needs GNU time (apt-get install time)" >&2; exit 1; }

work=$(mktemp -d /tmp/berth-vet-bench.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT

yaml_object() { # i
	local i=$1
	if (( i % 2 )); then cat <<EOT
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: app-$i, labels: {app: app-$i, tier: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: app-$i}}
  template:
    metadata: {labels: {app: app-$i, tier: web}}
    spec:
      containers:
      - name: app
        image: registry.local/app:1.$i
        env: [{name: MODE, value: prod}, {name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]
        ports: [{name: http, containerPort: 8080}]
        readinessProbe: {httpGet: {path: /ready, port: http}, periodSeconds: 5}
        resources: {requests: {cpu: 100m, memory: 64Mi}, limits: {memory: 128Mi}}
        volumeMounts: [{name: cache, mountPath: /cache}]
      volumes: [{name: cache, emptyDir: {medium: Memory, sizeLimit: 64Mi}}]
EOT
	else cat <<EOT
---
apiVersion: v1
kind: Pod
metadata: {name: pod-$i, labels: {app: pod-$i}}
spec:
  initContainers: [{name: init, image: busybox:1.36, command: [sh, -c, "true"]}]
  containers:
  - name: app
    image: nginx:1.27
    env: [{name: ID, value: "$i"}]
    ports: [{containerPort: 80, protocol: TCP}]
    livenessProbe: {tcpSocket: {port: 80}, initialDelaySeconds: 3}
  restartPolicy: Always
EOT
	fi
}

mkdir -p "$work/yaml"
for ((f = 0; f < N / 10; f++)); do
	for ((i = f * 10; i < f * 10 + 10; i++)); do yaml_object "$i"; done >"$work/yaml/objects-$f.yaml"
done

mkdir -p "$work/cue"
for ((p = 0; p < 10; p++)); do
	d="$work/cue/pkg$p"
	mkdir -p "$d"
	cat >"$d/template.cue" <<EOT
package pkg$p

import "berth.dev/k8s"

#App: {
	name: string
	n:    int
	out: k8s.#Deployment & {
		apiVersion: "apps/v1"
		kind:       "Deployment"
		metadata: {"name": name, labels: {app: name, tier: "web"}}
		spec: {
			replicas: 2
			selector: matchLabels: app: name
			template: {
				metadata: labels: {app: name, tier: "web"}
				spec: {
					containers: [{
						"name": "app"
						image:  "registry.local/app:1.\(n)"
						env: [{"name": "MODE", value: "prod"}, {"name": "POD", valueFrom: fieldRef: fieldPath: "metadata.name"}]
						ports: [{"name": "http", containerPort: 8080}]
						readinessProbe: {httpGet: {path: "/ready", port: "http"}, periodSeconds: 5}
						resources: {requests: {cpu: "100m", memory: "64Mi"}, limits: memory: "128Mi"}
						volumeMounts: [{"name": "cache", mountPath: "/cache"}]
					}]
					volumes: [{"name": "cache", emptyDir: {medium: "Memory", sizeLimit: "64Mi"}}]
				}
			}
		}
	}
}
EOT
	per=$((N / 10))
	for ((f = 0; f < per / 10; f++)); do
		{
			echo "package pkg$p"
			echo
			for ((i = 0; i < 10; i++)); do
				n=$((p * per + f * 10 + i))
				echo "app$n: (#App & {name: \"app-$n\", n: $n}).out"
			done
		} >"$d/objects-$f.cue"
	done
done

measure() { # label dir
	local label=$1 dir=$2 times=() cpus=() rss=0 out
	"$berth" vet "$dir" >/dev/null 2>&1 || { echo "bench: vet $dir failed" >&2; "$berth" vet "$dir" | head >&2; exit 1; }
	for ((r = 0; r < REPS; r++)); do
		/usr/bin/time -o "$work/time" -f '%e %M %U %S' "$berth" vet "$dir" >/dev/null 2>&1
		out=$(tail -1 "$work/time")
		times+=("$(awk '{printf "%d", $1 * 1000}' <<<"$out")")
		cpus+=("$(awk '{printf "%d", ($3 + $4) * 1000}' <<<"$out")")
		rss=$(( $(awk '{print $2}' <<<"$out") > rss ? $(awk '{print $2}' <<<"$out") : rss ))
	done
	IFS=$'\n' sorted=($(sort -n <<<"${times[*]}")) csorted=($(sort -n <<<"${cpus[*]}")); unset IFS
	printf '%-30s wall median %5d ms (range %d–%d)  CPU median %5d ms  peak RSS %d MiB\n' "$label" \
		"${sorted[$((REPS / 2))]}" "${sorted[0]}" "${sorted[$((REPS - 1))]}" "${csorted[$((REPS / 2))]}" $((rss / 1024))
}

echo "berth vet, $N objects, $REPS runs each ($(nproc) CPUs)"
measure "YAML ($((N / 10)) files)" "$work/yaml"
measure "CUE (10 packages, sandboxed)" "$work/cue"

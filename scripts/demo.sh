#!/usr/bin/env bash
# Quick start: run berth on the bundled example repository.
#
#   scripts/demo.sh          set up and apply examples/hello
#   scripts/demo.sh clean    remove the demo's pods, stop its containerd, delete its state
#
# Uses the containerd at /run/containerd/containerd.sock when one answers;
# otherwise starts a private containerd with its own root, state and socket
# under /var/lib/berth-demo and /run/berth-demo, and leaves it running.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
berth=$top/bin/berth
demo=${BERTH_DEMO_DIR:-/var/lib/berth-demo}
run=/run/berth-demo
repo=$demo/repo
export BERTH_STATE_DIR=$demo/state
export BERTH_NAMESPACE=berth-demo
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
export GIT_AUTHOR_NAME=demo GIT_AUTHOR_EMAIL=demo@localhost GIT_COMMITTER_NAME=demo GIT_COMMITTER_EMAIL=demo@localhost

answers() { ctr -a "$1" version >/dev/null 2>&1; }

if answers /run/containerd/containerd.sock; then
	export BERTH_CONTAINERD_ADDRESS=/run/containerd/containerd.sock
else
	export BERTH_CONTAINERD_ADDRESS=$run/containerd.sock
fi

if [ "${1:-}" = clean ]; then
	if answers "$BERTH_CONTAINERD_ADDRESS" && [ -d "$repo/.git" ]; then
		git -C "$repo" rm -q -r --ignore-unmatch '*.yaml' '*.cue' && git -C "$repo" commit -q --allow-empty -m "remove everything"
		"$berth" apply --repo "$repo" --allow-delete-all || true
	fi
	if [ -f "$run/containerd.pid" ]; then
		kill "$(cat "$run/containerd.pid")" 2>/dev/null || true
		rm -f "$run/containerd.pid"
	fi
	# What a removal that failed may have left: the pods' pinned
	# namespaces and volume mounts, deepest first.
	awk -v d="$demo/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do
		umount -l "$m" 2>/dev/null || true
	done
	for n in /var/run/netns/berth-demo-*; do
		[ -e "$n" ] || continue
		umount -l "$n" 2>/dev/null || true
		rm -f "$n"
	done
	# The namespace's parent cgroups and runc directory, which runc
	# leaves behind, empty, once the last pod is gone.
	. bench/lib.sh # functions only
	remove_namespace_dirs "$BERTH_NAMESPACE"
	rm -rf "$demo" "$run"
	echo "demo removed"
	exit 0
fi

if ! answers "$BERTH_CONTAINERD_ADDRESS"; then
	echo "== starting a private containerd ($BERTH_CONTAINERD_ADDRESS)"
	mkdir -p "$run" "$demo/containerd"
	cat >"$demo/containerd/config.toml" <<TOML
version = 2
root = "$demo/containerd/root"
state = "$run/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$run/containerd.sock"
TOML
	nohup containerd --config "$demo/containerd/config.toml" >"$demo/containerd/containerd.log" 2>&1 &
	echo $! >"$run/containerd.pid"
	for _ in $(seq 100); do answers "$BERTH_CONTAINERD_ADDRESS" && break; sleep 0.1; done
	answers "$BERTH_CONTAINERD_ADDRESS" || { cat "$demo/containerd/containerd.log" >&2; exit 1; }
fi

echo "== importing example.local/busybox:1 (built from busybox-static; no registry needed)"
scripts/make-image.sh "$demo/busybox.tar" example.local/busybox:1 2>/dev/null
ctr -a "$BERTH_CONTAINERD_ADDRESS" -n "$BERTH_NAMESPACE" images import "$demo/busybox.tar" >/dev/null

if [ ! -d "$repo/.git" ]; then
	echo "== turning examples/hello into a Git repository at $repo"
	mkdir -p "$repo"
	cp -r examples/hello/. "$repo/"
	git -C "$repo" init -q -b main
	git -C "$repo" add -A
	git -C "$repo" commit -q -m "hello from berth"
fi

echo "== berth plan"
"$berth" plan --repo "$repo" || [ $? -eq 2 ]
echo "== berth apply"
"$berth" apply --repo "$repo"
echo "== berth status"
"$berth" status
sleep 1
ip=$("$berth" status -o json | sed -n 's/.*"ip": *"\([0-9.]*\)".*/\1/p' | head -1)
if [ -n "$ip" ]; then
	echo "== the web pod answers at http://$ip:8080/"
	wget -qO- "http://$ip:8080/" || true
fi
cat <<MSG

berth is running the pods of $repo. To change them:

  export BERTH_CONTAINERD_ADDRESS=$BERTH_CONTAINERD_ADDRESS BERTH_NAMESPACE=$BERTH_NAMESPACE BERTH_STATE_DIR=$BERTH_STATE_DIR
  \$EDITOR $repo/web.yaml && git -C $repo commit -am "change web"
  $berth plan  --repo $repo      # what would change (exit 2 when something would)
  $berth apply --repo $repo      # do it; pods you did not change keep running
  $berth status

Remove everything with: make demo-clean
MSG

#!/usr/bin/env bash
# Install the Debian packages berth and its tests need, if any is missing.
set -euo pipefail
pkgs=(containerd runc containernetworking-plugins busybox-static git iptables iproute2 docker-registry openssh-server openssh-client jq curl time mosquitto mosquitto-clients)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

#!/usr/bin/env bash
# Build a single-layer OCI image archive from Debian's busybox-static, for
# hosts and tests that cannot reach a registry.
#
#   scripts/make-image.sh OUT.tar [REF]      (REF default example.local/busybox:1)
#
# Import it with: ctr -a SOCKET -n berth images import OUT.tar
set -euo pipefail
out=${1:?usage: make-image.sh OUT.tar [REF]}
ref=${2:-example.local/busybox:1}
bb=${BUSYBOX:-/bin/busybox}
[ -x "$bb" ] || { echo "make-image: $bb is missing (apt-get install busybox-static)" >&2; exit 1; }
case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; armv7l) arch=arm ;; *) arch=$(uname -m) ;; esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/root/bin" "$work/root/tmp" "$work/root/etc" "$work/oci/blobs/sha256"
cp "$bb" "$work/root/bin/busybox"
for applet in $("$bb" --list); do
	[ "$applet" = busybox ] || ln -s busybox "$work/root/bin/$applet"
done
chmod 1777 "$work/root/tmp"
tar -C "$work/root" --owner=0 --group=0 --numeric-owner --mtime=@0 --sort=name -cf "$work/layer.tar" .

blob() { local d; d=$(sha256sum "$1" | cut -d' ' -f1); cp "$1" "$work/oci/blobs/sha256/$d"; echo "$d $(stat -c %s "$1")"; }
read -r layer layer_size < <(blob "$work/layer.tar")
printf '{"architecture":"%s","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
	"$arch" "$layer" >"$work/config.json"
read -r config config_size < <(blob "$work/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
	"$config" "$config_size" "$layer" "$layer_size" >"$work/manifest.json"
read -r manifest manifest_size < <(blob "$work/manifest.json")
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}' \
	"$manifest" "$manifest_size" "$ref" >"$work/oci/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' >"$work/oci/oci-layout"
mkdir -p "$(dirname "$out")"
tar -C "$work/oci" -cf "$out.tmp" .
mv "$out.tmp" "$out"
echo "image $ref -> $out" >&2

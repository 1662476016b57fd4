#!/usr/bin/env bash
# Size of bin/berth and what each module linked into it adds.
#
# Builds bin/berth as `make build` does (stripped: -s -w) and reports its
# size, then builds the same program with its symbol table in a temporary
# directory and sums the code and read-only data of every symbol
# (`go tool nm -size`, types T/t/R/r) by the module of the package that
# defines it (`go list -deps`). Symbols no package owns (pclntab, type
# tables, go:func.*) are reported as "runtime tables": they grow with the
# code itself, roughly in proportion. Generic instantiations count for the
# package named first in the symbol. Uninitialized data (BSS) takes no room
# in the file and is left out.
#
#   bench/binsize.sh             (no root, no containerd)
#   TOP=30 bench/binsize.sh      (rows to print; default 25)
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
TOP=${TOP:-25}
work=$(mktemp -d /tmp/berth-binsize.XXXXXX)
trap 'rm -rf "$work"' EXIT

version=$(git describe --always --dirty 2>/dev/null || echo dev)
CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w -X main.version=$version" -o "$work/berth" ./cmd/berth
CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-X main.version=$version" -o "$work/berth-syms" ./cmd/berth
"$GO" list -deps -f '{{.ImportPath}} {{if .Module}}{{.Module.Path}}{{else}}std{{end}}' ./cmd/berth >"$work/pkgs"
"$GO" tool nm -size "$work/berth-syms" >"$work/syms"

size=$(stat -c %s "$work/berth")
echo "berth $version, $("$GO" env GOOS)/$("$GO" env GOARCH), $("$GO" version | awk '{print $3}')"
printf 'bin/berth (stripped, as make build): %d bytes (%.1f MiB); %d packages from %d modules\n' \
	"$size" "$(awk -v s="$size" 'BEGIN {print s / 1048576}')" \
	"$(wc -l <"$work/pkgs")" "$(awk '{print $2}' "$work/pkgs" | sort -u | wc -l)"

# The file's sections: code (.text), read-only data and type tables
# (.rodata), the function tables the runtime needs for stacks and panics
# (.gopclntab, roughly in proportion to .text), initialized data.
if command -v readelf >/dev/null; then
	readelf -SW "$work/berth" | sed 's/^ *\[ *[0-9]*\] *//' | awk '$1 ~ /^\./ && $2 != "NOBITS" && $2 != "NOTE" {print $1, $5}' |
		while read -r name hex; do printf '%s %d\n' "$name" "$((16#$hex))"; done |
		awk '$2 >= 104858 {printf "%s%s %.1f MiB", sep, $1, $2 / 1048576; sep = ", "} END {print ""}'
fi

# awk: the first file maps package → module; each symbol of the second is
# attributed to the longest known package path that prefixes its name.
awk '
NR == FNR { mod[$1] = $2; next }
$3 !~ /^[TtRr]$/ { next }
{
	sz = $2; name = $4
	for (i = 5; i <= NF; i++) name = name " " $i
	sub(/^(type:|go:itab\.|go:info\.|go:string\.)/, "", name)
	sub(/^\*+/, "", name)
	sub(/^(\.eq\.|\.hash\.)/, "", name)
	m = "runtime tables"
	# package path: up to the first "." after the last "/" before any "(" or "["
	p = name
	cut = match(p, /[\[(]/); if (cut) p = substr(p, 1, cut - 1)
	slash = 0; for (i = length(p); i > 0; i--) if (substr(p, i, 1) == "/") { slash = i; break }
	dot = index(substr(p, slash + 1), ".")
	if (dot) p = substr(p, 1, slash + dot - 1)
	while (p != "") {
		if (p in mod) { m = mod[p]; break }
		s = 0; for (i = length(p); i > 0; i--) if (substr(p, i, 1) == "/") { s = i; break }
		p = s ? substr(p, 1, s - 1) : ""
	}
	if (m == "std") m = "Go standard library"
	by[m] += sz; sum += sz
}
END {
	for (m in by) printf "%d\t%s\n", by[m], m
}' "$work/pkgs" "$work/syms" | sort -t"$(printf '\t')" -k1,1nr >"$work/by"

awk -F'\t' -v top="$TOP" '
{ sum += $1; row[NR] = $0 }
END {
	printf "\nsymbols attributed: %.1f MiB of code and read-only data (unstripped build)\n\n", sum / 1048576
	print "| module | KiB | share |"
	print "|---|---:|---:|"
	for (i = 1; i <= NR; i++) {
		split(row[i], f, "\t")
		if (i > top) { rest += f[1]; restn++; continue }
		printf "| %s | %d | %.1f%% |\n", f[2], f[1] / 1024, 100 * f[1] / sum
	}
	if (restn) printf "| %d other modules | %d | %.1f%% |\n", restn, rest / 1024, 100 * rest / sum
}' "$work/by"

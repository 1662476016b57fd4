package fleet

import (
	"io/fs"
	"regexp"
	"sort"
	"strings"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/schema"
)

// Loading a revision depends on the device only through its CUE files'
// @tag(name) and @if(expression) attributes, which read the node's name
// ("node") and labels. YAML and JSON files do not depend on the device at
// all. So devices that agree on every name a revision's CUE attributes
// mention get the same result, and share one evaluation.

var (
	attrStart = regexp.MustCompile(`@(tag|if)\s*\(`)
	ident     = regexp.MustCompile(`[A-Za-z_$#][A-Za-z0-9_$#-]*`)
)

// tagNames lists the names the CUE files of fsys can read from a node:
// the first argument of every @tag (and the kubelet labels behind tag
// variables, @tag(x,var=arch)) and every identifier after an @if (to
// the end of its line; "node" there is the node's name). The scan reads text, so it may list names no
// attribute uses (in a comment, say), which only costs sharing; it never
// misses one.
func tagNames(fsys fs.FS) []string {
	names := map[string]bool{}
	_ = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".cue") {
			return nil
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			// Unreadable: the loader reports it the same way on every
			// device.
			return nil
		}
		text := string(data)
		for _, m := range attrStart.FindAllStringSubmatchIndex(text, -1) {
			rest := text[m[1]:]
			if i := strings.IndexByte(rest, '\n'); i >= 0 {
				rest = rest[:i]
			}
			if text[m[2]:m[3]] == "tag" {
				arg, _, _ := strings.Cut(rest, ",")
				arg, _, _ = strings.Cut(arg, ")")
				names[strings.Trim(strings.TrimSpace(arg), `"`)] = true
				if strings.Contains(rest, "var=") {
					// A tag variable reads a kubelet label.
					names[reconcile.LabelOS], names[reconcile.LabelArch], names[reconcile.LabelHostname] = true, true, true
				}
				continue
			}
			for _, id := range ident.FindAllString(rest, -1) {
				names[id] = true
			}
		}
		return nil
	})
	out := make([]string, 0, len(names))
	for n := range names {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// loadKey is what loading a revision whose CUE attributes mention names
// depends on for device d: the value (or absence) of each name.
func loadKey(d Device, names []string) string {
	var b strings.Builder
	for _, n := range names {
		v, has := d.Labels[n]
		if n == "node" {
			v, has = d.Name, true
		}
		b.WriteString(n)
		if has {
			b.WriteString("=" + v)
		}
		b.WriteByte(0)
	}
	return b.String()
}

// loaderOptions are the loader options for d.
func loaderOptions(d Device, opts schema.Options) schema.Options {
	opts.Node = d.Node()
	return opts
}

// Package mountinfo reads this process's mount table
// (/proc/self/mountinfo). The runtime uses it to find and undo a pod's
// mounts; the test harness uses it to check that nothing is left mounted.
package mountinfo

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"sort"
	"strconv"
	"strings"
)

// Under returns the mount points at or below dir, deepest first, so they
// can be unmounted in order. It returns nil when the table cannot be read.
// A path that does not exist has nothing mounted at or below it (a mount
// point cannot be removed, and removing it in another mount namespace
// detaches what was mounted there), so the table, which every pod
// lengthens by a few lines, is read only when dir exists: most pods have
// no subPath and no tmpfs volume, and each of their container starts and
// removals asks about those directories.
func Under(dir string) []string {
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	return under(data, dir)
}

func under(table []byte, dir string) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(table))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		mp := unescape(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// unescape undoes the kernel's octal escapes (\040 for a space, \011,
// \012, \134) in a mount point.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

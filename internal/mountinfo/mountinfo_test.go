package mountinfo

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestUnder(t *testing.T) {
	table := []byte(`22 1 254:1 / / rw,relatime - ext4 /dev/vda rw
30 22 0:25 / /var/lib/berth/pods/default_web/volumes/cache rw - tmpfs tmpfs rw
31 30 0:26 / /var/lib/berth/pods/default_web/volumes/cache/sub\040dir rw - tmpfs tmpfs rw
32 22 0:27 / /var/lib/berth/pods/default_webx rw - tmpfs tmpfs rw
33 22 0:28 / /var/lib/berth/pods/default_web rw - tmpfs tmpfs rw
`)
	got := under(table, "/var/lib/berth/pods/default_web")
	want := []string{
		"/var/lib/berth/pods/default_web/volumes/cache/sub dir",
		"/var/lib/berth/pods/default_web/volumes/cache",
		"/var/lib/berth/pods/default_web",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("under (-want +got):\n%s", diff)
	}
	if got := under(table, "/nowhere"); got != nil {
		t.Errorf("under(/nowhere) = %v", got)
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{`/a\040b`: "/a b", `/tab\011x`: "/tab\tx", `/back\134slash`: `/back\slash`, `/bad\09x`: `/bad\09x`, `/end\04`: `/end\04`} {
		if got := unescape(in); got != want {
			t.Errorf("unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestUnderReadsThisProcess(t *testing.T) {
	if got := Under("/"); len(got) == 0 || got[len(got)-1] != "/" {
		t.Errorf("Under(/) = %v, want the root mount last", got)
	}
}

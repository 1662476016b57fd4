package schema

import (
	"bufio"
	"encoding/gob"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// sandboxEnv makes the test binary serve as the sandbox's child.
const sandboxEnv = "BERTH_SCHEMA_TEST_SANDBOX"

func TestMain(m *testing.M) {
	if os.Getenv(sandboxEnv) != "" {
		os.Exit(ServeSandbox(os.Stdin, os.Stdout))
	}
	os.Exit(m.Run())
}

// testSandbox runs CUE in a child process: this test binary.
func testSandbox(t testing.TB) *Sandbox {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sb := &Sandbox{Command: []string{exe}, Env: []string{sandboxEnv + "=1"}, Timeout: 3 * time.Second, MemoryLimit: 256 << 20}
	t.Cleanup(sb.Close)
	return sb
}

const goodCUE = `package good

web: {
	apiVersion: "v1"
	kind:       "Pod"
	metadata: name: "web"
	spec: containers: [{name: "app", image: "nginx"}]
}
`

// TestSandboxBounds checks that pathological CUE is stopped and reported
// at its package, and that the other packages of the revision are still
// evaluated: evaluation that does not end, deep recursion, and a package
// that eats memory.
func TestSandboxBounds(t *testing.T) {
	deep := strings.Repeat("[", 300000) + strings.Repeat("]", 300000)
	tests := []struct {
		name    string
		src     string
		timeout time.Duration
		memory  int64
		want    string
	}{
		// CUE ends this one with an error of its own.
		{"cycle", "package bad\n\nA0:A&A,A:A0:A0:A,A\n", 0, 0, "structural cycle"},
		{"deadline", "package bad\n\nimport \"list\"\n\nx: len([for i in list.Range(0, 20000000, 1) if i < 0 {i}])\n",
			300 * time.Millisecond, 2 << 30, "did not finish within 300ms"},
		{"memory", "package bad\n\nimport \"list\"\n\nx: [for i in list.Range(0, 50000000, 1) {i}]\ny: len(x)\n",
			30 * time.Second, 256 << 20, "used more than 256 MiB of memory"},
		{"deep nesting", "package bad\n\nx: " + deep + "\n", 0, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := fstest.MapFS{
				"a/good.cue":    {Data: []byte(strings.Replace(strings.Replace(goodCUE, "good", "a", 1), `"web"`, `"a"`, 1))},
				"bad/bad.cue":   {Data: []byte(tt.src)},
				"good/good.cue": {Data: []byte(goodCUE)},
				"z/pod.yaml":    {Data: []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: y}\nspec: {containers: [{name: c, image: busybox}]}\n")},
			}
			done := make(chan struct{})
			var lines []string
			go func() {
				defer close(done)
				sb := testSandbox(t)
				if tt.timeout != 0 {
					sb.Timeout = tt.timeout
				}
				if tt.memory != 0 {
					sb.MemoryLimit = tt.memory
				}
				_, err := Load(fsys, Options{Sandbox: sb})
				lines = diagnostics(t, err)
			}()
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				t.Fatal("Load did not return")
			}
			if len(lines) == 0 {
				t.Fatal("no diagnostics")
			}
			for _, l := range lines {
				if !strings.HasPrefix(l, "./bad") {
					t.Errorf("diagnostic outside the bad package: %s", l)
				}
				if tt.want != "" && !strings.Contains(l, tt.want) {
					t.Errorf("diagnostic %q does not contain %q", l, tt.want)
				}
			}
			t.Logf("%s", strings.Join(lines, "\n"))
		})
	}
}

// TestSandboxSameAsInProcess checks that a package evaluated in the child
// gives what it gives in process.
func TestSandboxSameAsInProcess(t *testing.T) {
	fsys := fstest.MapFS{"good/good.cue": {Data: []byte(goodCUE)}, "two/two.cue": {Data: []byte(strings.Replace(strings.Replace(goodCUE, "package good", "package two\n\nimport \"berth.dev/k8s\"\n\nweb: k8s.#Pod", 1), `name: "web"`, `name: "two"`, 1))}}
	a, err := Load(fsys, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load(fsys, Options{Sandbox: testSandbox(t)})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(a, b); d != "" {
		t.Errorf("sandbox differs (-in process +sandbox):\n%s", d)
	}
	if len(a.Objects) != 2 {
		t.Errorf("got %d objects, want 2", len(a.Objects))
	}
}

func TestSandboxMissingCommand(t *testing.T) {
	fsys := fstest.MapFS{"good/good.cue": {Data: []byte(goodCUE)}}
	_, err := Load(fsys, Options{Sandbox: &Sandbox{Command: []string{"/nonexistent/berth"}}})
	if err == nil || !strings.Contains(err.Error(), "sandbox") {
		t.Errorf("err = %v, want a sandbox error", err)
	}
	_ = fmt.Sprint()
}

// TestChildCrash checks that a child that dies is reported at the package
// it was evaluating.
func TestChildCrash(t *testing.T) {
	fsys := fstest.MapFS{"good/good.cue": {Data: []byte(goodCUE)}}
	_, err := Load(fsys, Options{Sandbox: &Sandbox{Command: []string{"/bin/sh", "-c", "echo boom >&2; exit 3"}}})
	want := []string{"./good/good.cue: CUE evaluation of this package failed: exit status 3 boom"}
	if d := cmp.Diff(want, diagnostics(t, err)); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

// TestEmbedConfined checks that @embed reads only files of the repository,
// within the size limit.
func TestEmbedConfined(t *testing.T) {
	cm := func(attr string) []byte {
		return []byte("@extern(embed)\n\npackage c\n\ncm: {\n\tapiVersion: \"v1\"\n\tkind: \"ConfigMap\"\n\tmetadata: name: \"c\"\n\tdata: x: _ " + attr + "\n}\n")
	}
	tests := []struct {
		name string
		fsys fstest.MapFS
		want []string
	}{{
		name: "dot-dot",
		fsys: fstest.MapFS{"c/c.cue": {Data: cm("@embed(file=\"../secret.txt\", type=text)")}, "secret.txt": {Data: []byte("s")}},
		want: []string{"./c/c.cue:9:13: @embed: cannot refer to parent directory"},
	}, {
		name: "absolute",
		fsys: fstest.MapFS{"c/c.cue": {Data: cm("@embed(file=/etc/passwd, type=text)")}},
		want: []string{"./c/c.cue:9:13: @embed: only relative files are allowed"},
	}, {
		name: "symlink out",
		fsys: fstest.MapFS{"c/c.cue": {Data: cm("@embed(file=link.txt, type=text)")}, "c/link.txt": {Data: []byte("/etc/passwd"), Mode: os.ModeSymlink}},
		want: []string{"./c/link.txt: symbolic link points outside the repository"},
	}, {
		name: "too large",
		fsys: fstest.MapFS{"c/c.cue": {Data: cm("@embed(file=big.txt, type=text)")}, "c/big.txt": {Data: make([]byte, DefaultMaxFileSize+1)}},
		want: []string{"./c/big.txt: file is larger than the limit of 1 MiB"},
	}, {
		name: "missing",
		fsys: fstest.MapFS{"c/c.cue": {Data: cm("@embed(file=none.txt, type=text)")}},
		want: []string{"./c/none.txt: cannot read: file does not exist"},
	}, {
		name: "unknown type",
		fsys: fstest.MapFS{"c/c.cue": {Data: cm("@embed(file=a.conf)")}, "c/a.conf": {Data: []byte("x")}},
		want: []string{"./c/c.cue:9:13: @embed: unknown file extension .conf"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.fsys, Options{Sandbox: testSandbox(t)})
			if d := cmp.Diff(tt.want, diagnostics(t, err)); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

// TestSandboxKeepsChild checks that the child is kept between loads, and
// that a kept child that died while idle is replaced without blaming any
// package.
func TestSandboxKeepsChild(t *testing.T) {
	sb := testSandbox(t)
	fsys := fstest.MapFS{"good/good.cue": {Data: []byte(goodCUE)}}
	if _, err := Load(fsys, Options{Sandbox: sb}); err != nil {
		t.Fatal(err)
	}
	first := sb.child
	if first == nil {
		t.Fatal("no child kept")
	}
	fsys["good/good.cue"] = &fstest.MapFile{Data: []byte(strings.Replace(goodCUE, `"web"`, `"web2"`, 1))}
	if _, err := Load(fsys, Options{Sandbox: sb}); err != nil {
		t.Fatal(err)
	}
	if sb.child != first {
		t.Error("a new child was started for the second load")
	}
	// Killed but not reaped: the process lingers as a zombie. Wait until
	// its output is seen closed.
	_ = first.cmd.Process.Kill()
	for deadline := time.Now().Add(10 * time.Second); first.alive(); {
		if time.Now().After(deadline) {
			t.Fatal("the killed child still looks alive")
		}
		time.Sleep(10 * time.Millisecond)
	}
	fsys["good/good.cue"] = &fstest.MapFile{Data: []byte(strings.Replace(goodCUE, `"web"`, `"web3"`, 1))}
	res, err := Load(fsys, Options{Sandbox: sb})
	if err != nil {
		t.Fatalf("after the kept child died: %v", err)
	}
	if res.Objects[0].Metadata.Name != "web3" {
		t.Errorf("got %s", res.Objects[0].Key())
	}
}

// TestSandboxChildEndsWithParent checks that a child whose parent is gone
// (berth killed, or exiting at once on SIGTERM) ends itself, even with an
// evaluation under way that would run far longer, instead of running on as
// an orphan.
func TestSandboxChildEndsWithParent(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	jobs, feed, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer feed.Close()
	// The shell is the parent: it starts the child on fd 3 and ends when
	// its own input closes.
	sh := exec.Command("/bin/sh", "-c", `BERTH_SANDBOX_PARENT=$$ "$0" <&3 3<&- & echo $!; read x; true`, exe)
	sh.Env = append(os.Environ(), sandboxEnv+"=1")
	sh.ExtraFiles = []*os.File{jobs}
	hold, err := sh.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := sh.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	jobs.Close()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	pid := strings.TrimSpace(line)
	endless := []*cueJob{{Dir: "bad", Files: map[string][]byte{"bad/bad.cue": []byte(
		"package bad\n\nimport \"list\"\n\nx: len([for i in list.Range(0, 2000000000, 1) if i < 0 {i}])\n")}}}
	if err := gob.NewEncoder(feed).Encode(&endless); err != nil {
		t.Fatal(err)
	}
	hold.Close() // the parent ends
	if err := sh.Wait(); err != nil {
		t.Fatal(err)
	}
	// Wait for the child to be gone (or a zombie nobody reaps).
	for deadline := time.Now().Add(30 * time.Second); ; {
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil || strings.Contains(string(stat), ") Z ") {
			return
		}
		if time.Now().After(deadline) {
			_ = exec.Command("kill", "-9", pid).Run()
			t.Fatal("the child still runs 30 s after its parent ended")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSandboxKeepsTheModel checks that an object evaluated in the
// sandbox's child is the one evaluated in process: a pointer to a zero
// value (replicas: 0) stays one, and a Secret keeps its data.
func TestSandboxKeepsTheModel(t *testing.T) {
	fsys := fstest.MapFS{
		"app/d.cue": {Data: []byte(`package app

deploy: {
	apiVersion: "apps/v1"
	kind:       "Deployment"
	metadata: name: "web"
	spec: {
		replicas: 0
		selector: matchLabels: app: "web"
		template: {
			metadata: labels: app: "web"
			spec: containers: [{name: "web", image: "nginx:1.27", env: [{name: "DB", valueFrom: secretKeyRef: {name: "db", key: "password"}}]}]
		}
	}
}
secret: {
	apiVersion: "v1"
	kind:       "Secret"
	metadata: name: "db"
	stringData: password: "s3cr3t"
}
`)},
	}
	want, err := Load(fsys, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Load(fsys, Options{Sandbox: testSandbox(t)})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("sandbox result differs (-in process +sandbox):\n%s", d)
	}
	if r := got.Objects[0].Deployment.Replicas; r == nil || *r != 0 {
		t.Errorf("replicas: %v, want a pointer to 0", r)
	}
	if s := got.Objects[1].Secret; s == nil || string(s.Data["password"]) != "s3cr3t" {
		t.Errorf("Secret data: %+v, want password s3cr3t", s)
	}
}

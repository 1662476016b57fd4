package schema

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"
)

// podRepo returns a repository of n Pods, ten YAML documents per file.
func podRepo(n int) fstest.MapFS {
	fsys := fstest.MapFS{}
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `---
apiVersion: v1
kind: Pod
metadata:
  name: pod-%d
  labels: {app: web, tier: "%d"}
spec:
  initContainers:
  - name: init
    image: busybox:1.36
    command: [sh, -c, "true"]
  containers:
  - name: app
    image: nginx:1.27
    env: [{name: MODE, value: prod}, {name: ID, value: "%d"}]
    ports: [{name: http, containerPort: 80, protocol: TCP}]
    volumeMounts: [{name: data, mountPath: /data}]
  - name: sidecar
    image: busybox:1.36
    args: [sleep, "3600"]
  volumes:
  - name: data
    emptyDir: {medium: Memory, sizeLimit: 64Mi}
  restartPolicy: Always
`, i, i%10, i)
		if i%10 == 9 || i == n-1 {
			fsys[fmt.Sprintf("apps/pods-%03d.yaml", i/10)] = &fstest.MapFile{Data: []byte(b.String())}
			b.Reset()
		}
	}
	return fsys
}

// BenchmarkLoad1000 loads a repository of 1000 Pods.
func BenchmarkLoad1000(b *testing.B) {
	fsys := podRepo(1000)
	b.ReportAllocs()
	defer reportCPU(b, cpuTime())
	for b.Loop() {
		res, err := Load(fsys, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Objects) != 1000 {
			b.Fatalf("got %d objects", len(res.Objects))
		}
	}
}

// cueRepo returns a repository of n Deployments in CUE: ten packages, each
// with a template importing berth.dev/k8s and files of ten objects.
func cueRepo(n int) fstest.MapFS {
	fsys := fstest.MapFS{}
	per := n / 10
	for p := range 10 {
		dir := fmt.Sprintf("pkg%d", p)
		fsys[dir+"/template.cue"] = &fstest.MapFile{Data: []byte(fmt.Sprintf(`package pkg%d

import "berth.dev/k8s"

#App: {
	name: string
	out: k8s.#Deployment & {
		apiVersion: "apps/v1"
		kind:       "Deployment"
		metadata: {"name": name, labels: app: name}
		spec: {
			replicas: 2
			selector: matchLabels: app: name
			template: {
				metadata: labels: app: name
				spec: containers: [{
					"name": "app"
					image:  "registry.local/app:1"
					env: [{"name": "MODE", value: "prod"}]
					ports: [{"name": "http", containerPort: 8080}]
					resources: requests: {cpu: "100m", memory: "64Mi"}
				}]
			}
		}
	}
}
`, p))}
		for f := range per / 10 {
			var b strings.Builder
			fmt.Fprintf(&b, "package pkg%d\n\n", p)
			for i := range 10 {
				k := p*per + f*10 + i
				fmt.Fprintf(&b, "app%d: (#App & {name: \"app-%d\"}).out\n", k, k)
			}
			fsys[fmt.Sprintf("%s/objects-%02d.cue", dir, f)] = &fstest.MapFile{Data: []byte(b.String())}
		}
	}
	return fsys
}

// BenchmarkLoad1000CUE loads 1000 Deployments written in CUE, in process.
func BenchmarkLoad1000CUE(b *testing.B) {
	fsys := cueRepo(1000)
	b.ReportAllocs()
	defer reportCPU(b, cpuTime())
	for b.Loop() {
		res, err := Load(fsys, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Objects) != 1000 {
			b.Fatalf("got %d objects", len(res.Objects))
		}
	}
}

// BenchmarkRevalidateOneFile loads a 1000-object repository again after
// one of its files changed, with a Cache: only that file is validated.
func BenchmarkRevalidateOneFile(b *testing.B) {
	for _, tt := range []struct {
		name    string
		fsys    fstest.MapFS
		file    string
		sandbox bool
	}{
		{"yaml", podRepo(1000), "apps/pods-042.yaml", false},
		{"cue", cueRepo(1000), "pkg4/objects-05.cue", false},
		{"cue-sandboxed", cueRepo(1000), "pkg4/objects-05.cue", true},
	} {
		b.Run(tt.name, func(b *testing.B) {
			cache := NewCache()
			opts := Options{Cache: cache}
			if tt.sandbox {
				opts.Sandbox = testSandbox(b)
			}
			if _, err := Load(tt.fsys, opts); err != nil {
				b.Fatal(err)
			}
			orig := string(tt.fsys[tt.file].Data)
			start := cpuTime() + childCPU(opts.Sandbox)
			defer func() { reportCPU(b, start-childCPU(opts.Sandbox)) }()
			for i := 0; b.Loop(); i++ {
				// Each iteration is a new revision in which one object of
				// this file changed.
				changed := strings.Replace(orig, "value: prod", fmt.Sprintf("value: prod-%d", i), 1)  // YAML
				changed = strings.Replace(changed, `name: "app-`, fmt.Sprintf(`name: "app%d-`, i), 1) // CUE
				tt.fsys[tt.file] = &fstest.MapFile{Data: []byte(changed)}
				if _, err := Load(tt.fsys, opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSameRevision loads the same 1000-object repository again with a
// Cache: no validation at all.
func BenchmarkSameRevision(b *testing.B) {
	fsys := podRepo(1000)
	cache := NewCache()
	if _, err := Load(fsys, Options{Cache: cache}); err != nil {
		b.Fatal(err)
	}
	defer reportCPU(b, cpuTime())
	for b.Loop() {
		if _, err := Load(fsys, Options{Cache: cache}); err != nil {
			b.Fatal(err)
		}
	}
}

// cpuTime returns the CPU time (user and system) the process and its
// finished children (CUE sandboxes) used so far.
func cpuTime() time.Duration {
	var total time.Duration
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		_ = syscall.Getrusage(who, &ru)
		total += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return total
}

// reportCPU reports the CPU time per operation since start, a figure that
// depends less on what else the machine runs than the wall time.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64((cpuTime()-start).Milliseconds())/float64(b.N), "cpu-ms/op")
}

// childCPU returns the CPU time a sandbox's kept child used so far; a
// child that is not waited for is not in the process's own figures.
func childCPU(sb *Sandbox) time.Duration {
	if sb == nil {
		return 0
	}
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if sb.child == nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", sb.child.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses: utime and
	// stime are the 12th and 13th, in clock ticks of 1/100 s.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	var ut, st int64
	fmt.Sscan(f[11], &ut)
	fmt.Sscan(f[12], &st)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

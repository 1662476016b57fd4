package schema

import (
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
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
    emptyDir: {sizeLimit: 64Mi}
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

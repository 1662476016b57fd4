package fleet_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"

	"berth.dev/berth/fleet"
)

// benchRepo returns a repository of 50 objects for a fleet of ten label
// groups: per group a Pod and a DaemonSet selected by the group's label,
// plus ConfigMaps, Secrets and Deployments every device runs. In head,
// every group's Pod gets a new image, one ConfigMap and one Secret
// change, and one Deployment is scaled.
func benchRepo(head bool) fstest.MapFS {
	fs := fstest.MapFS{}
	add := func(name, s string) { fs[name] = &fstest.MapFile{Data: []byte(s)} }
	tag := "1.27"
	conf, secret, replicas := "listen 80;", "s3cr3t-a", 2
	if head {
		tag, conf, secret, replicas = "1.28", "listen 8080;", "s3cr3t-b", 3
	}
	for g := range 10 {
		add(fmt.Sprintf("group-%d/pod.yaml", g), fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: edge-%d, labels: {app: edge}}
spec:
  nodeSelector: {group: g%d}
  containers:
  - name: main
    image: example.local/edge:%s
    args: [serve, --group, g%d]
    env: [{name: GROUP, value: g%d}]
    resources: {limits: {memory: 64Mi, cpu: 100m}}
`, g, g, tag, g, g))
		add(fmt.Sprintf("group-%d/agent.yaml", g), fmt.Sprintf(`apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent-%d}
spec:
  selector: {matchLabels: {app: agent-%d}}
  template:
    metadata: {labels: {app: agent-%d}}
    spec:
      nodeSelector: {group: g%d}
      containers:
      - name: agent
        image: example.local/agent:2
        volumeMounts: [{name: conf, mountPath: /etc/agent}]
      volumes: [{name: conf, configMap: {name: agent-%d}}]
`, g, g, g, g, g))
		c := "listen 80;"
		if g == 0 {
			c = conf
		}
		add(fmt.Sprintf("group-%d/config.yaml", g), fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata: {name: agent-%d}
data:
  agent.conf: |
    # agent configuration for group %d
    %s
    log debug;
`, g, g, c))
	}
	for i := range 10 {
		r := 2
		if i == 0 {
			r = replicas
		}
		add(fmt.Sprintf("apps/app-%d.yaml", i), fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: app-%d}
spec:
  replicas: %d
  selector: {matchLabels: {app: app-%d}}
  template:
    metadata: {labels: {app: app-%d}}
    spec:
      containers:
      - name: app
        image: example.local/app-%d:1
        envFrom: [{secretRef: {name: app-%d}}]
`, i, r, i, i, i, i))
		s := "s3cr3t-a"
		if i == 0 {
			s = secret
		}
		add(fmt.Sprintf("apps/secret-%d.yaml", i), fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: app-%d}
stringData: {TOKEN: %s}
`, i, s))
	}
	return fs
}

// benchInventory lists n devices in ten label groups.
func benchInventory(n int) *fleet.Inventory {
	inv := &fleet.Inventory{}
	for i := range n {
		inv.Devices = append(inv.Devices, fleet.Device{
			Name:   fmt.Sprintf("device-%04d", i),
			Labels: map[string]string{"group": fmt.Sprintf("g%d", i%10), "site": fmt.Sprintf("site-%d", i%7)},
		})
	}
	return inv
}

func countObjects(fs fstest.MapFS) int {
	n := 0
	for _, f := range fs {
		n += 1 + strings.Count(string(f.Data), "\n---")
	}
	return n
}

// BenchmarkPlan500 previews a change over 50 objects on 500 devices in
// ten label groups.
func BenchmarkPlan500(b *testing.B) {
	base := fleet.Revision{Name: "main", Commit: "base", Files: benchRepo(false)}
	head := fleet.Revision{Name: "feature", Commit: "head", Files: benchRepo(true)}
	if n := countObjects(base.Files.(fstest.MapFS)); n != 50 {
		b.Fatalf("%d objects, want 50", n)
	}
	inv := benchInventory(500)
	b.ReportAllocs()
	for b.Loop() {
		r, err := fleet.Plan(context.Background(), base, head, inv, fleet.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if r.Failed > 0 || r.Affected != 500 || len(r.Groups) != 10 {
			b.Fatalf("report: %d failed, %d affected, %d groups", r.Failed, r.Affected, len(r.Groups))
		}
	}
}

package schema

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"berth.dev/berth/internal/corpus"
	"berth.dev/berth/reconcile"
)

// corpusRejected lists the corpus files that must not load, each with a
// phrase every one of its errors must contain: each names the unsupported
// feature or the exact mistake. Every other file must load.
var corpusRejected = map[string][]string{
	"admin/konnectivity/konnectivity-server.yaml":          {"priorityClassName: field not supported by berth: pod priority"},
	"admin/sched/pod3.yaml":                                {"schedulerName: field not supported by berth"},
	"application/job/cronjob.yaml":                         {`batch/v1beta1 CronJob is no longer served by Kubernetes; use apiVersion "batch/v1"`},
	"application/wordpress/mysql-deployment.yaml":          {"persistentVolumeClaim: field not supported by berth: a host has no PersistentVolumes"},
	"application/zookeeper/zookeeper.yaml":                 {"requiredDuringSchedulingIgnoredDuringExecution: field not supported by berth: required pod anti-affinity"},
	"controllers/job-backoff-limit-per-index-example.yaml": {"backoffLimitPerIndex: field not supported by berth", "maxFailedIndexes: field not supported by berth"},
	"controllers/job-pod-failure-policy-example.yaml":      {"podFailurePolicy: field not supported by berth"},
	"pods/image-volumes.yaml":                              {"image: field not supported by berth: image volumes"},
	"pods/multi-container/shared-volume.yaml":              {"sizeLimit: field not supported by berth: the size of an emptyDir on disk is not limited"},
	"pods/pod-projected-svc-token.yaml":                    {"serviceAccountToken: field not supported by berth: service account tokens"},
	"pods/pod-with-node-affinity.yaml":                     {"requiredDuringSchedulingIgnoredDuringExecution: must be an object, got list"},
	"pods/pod-with-scheduling-gates.yaml":                  {"schedulingGates: field not supported by berth: scheduling gates"},
	"pods/private-reg-pod.yaml":                            {`"<your-private-image>" is not a valid image reference`, "is not declared in this revision"},
	"pods/resource/extended-resource-pod.yaml":             {`extended resource "example.com/dongle" is not supported`},
	"pods/resource/pod-level-resources.yaml":               {"spec.resources: field not supported by berth: pod-level resources"},
	"pods/resource/pod-resize.yaml":                        {"resizePolicy: field not supported by berth: in-place resize"},
	"pods/restart-policy/restart-all-containers.yaml":      {"restartPolicyRules: field not supported by berth: container restart rules"},
	"pods/storage/pv-pod.yaml":                             {"persistentVolumeClaim: field not supported by berth: a host has no PersistentVolumes"},
}

// corpusUnit is what is loaded on its own: one file, or a CUE module.
type corpusUnit struct {
	name  string
	files fstest.MapFS
}

// corpusUnits lists the units under dir: each YAML, JSON or CUE file alone,
// and each directory holding cue.mod as one unit.
func corpusUnits(t *testing.T, dir string) []corpusUnit {
	t.Helper()
	var units []corpusUnit
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if _, err := os.Stat(filepath.Join(p, "cue.mod")); err == nil && rel != "." {
				u := corpusUnit{name: rel + "/", files: fstest.MapFS{}}
				err := filepath.WalkDir(p, func(q string, e fs.DirEntry, err error) error {
					if err != nil || e.IsDir() {
						return err
					}
					data, err := os.ReadFile(q)
					r, _ := filepath.Rel(p, q)
					u.files[filepath.ToSlash(r)] = &fstest.MapFile{Data: data}
					return err
				})
				units = append(units, u)
				if err != nil {
					return err
				}
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(p) {
		case ".yaml", ".yml", ".json", ".cue":
			data, err := os.ReadFile(p)
			units = append(units, corpusUnit{name: rel, files: fstest.MapFS{rel: {Data: data}}})
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(units, func(a, b corpusUnit) int { return strings.Compare(a.name, b.name) })
	return units
}

// corpusCounts sums up one corpus.
type corpusCounts struct {
	units, loaded, needs, rejected int
}

// runCorpus loads each unit and writes its row of the table to doc. A unit
// loads; or fails only because it refers to ConfigMaps or Secrets that
// other files declare (it "needs" them); or is rejected, and then every
// error must contain one of the phrases rejected lists for it, and each
// phrase must appear.
func runCorpus(t *testing.T, doc *strings.Builder, units []corpusUnit, rejected map[string][]string) corpusCounts {
	var n corpusCounts
	n.units = len(units)
	for _, u := range units {
		res, err := Load(u.files, Options{Node: reconcile.KubeletNode("node-1", "linux", "amd64", nil)})
		want, isRejected := rejected[u.name]
		var result string
		var lerr *Error
		switch {
		case err == nil:
			n.loaded++
			var kinds []string
			for _, o := range res.Objects {
				kinds = append(kinds, o.Kind+" "+o.Metadata.Name)
			}
			result = "loads: " + strings.Join(kinds, ", ")
			if len(kinds) == 0 {
				result = "loads: no object"
			}
			for _, w := range res.Warnings {
				result += "<br>warning: " + mdEscape(w.Path+": "+w.Message)
			}
			if isRejected {
				t.Errorf("%s loads, want errors containing %q", u.name, want)
			}
		case !errors.As(err, &lerr):
			t.Fatalf("%s: %v", u.name, err)
		case onlyMissingRefs(lerr) && !isRejected:
			n.needs++
			var needs []string
			for _, d := range lerr.Diagnostics {
				if d.Severity == SeverityError {
					needs = append(needs, mdEscape(d.Message[:strings.Index(d.Message, " is not declared")]))
				}
			}
			slices.Sort(needs)
			result = "needs from other files: " + strings.Join(slices.Compact(needs), ", ")
		default:
			n.rejected++
			var msgs []string
			for _, d := range lerr.Diagnostics {
				line := fmt.Sprintf("%s line %d: %s", d.Pos.File, d.Pos.Line, d.Path+": "+d.Message)
				if d.Severity == SeverityWarning {
					line = "warning: " + d.Path + ": " + d.Message
				} else if !isRejected || !containsAny(d.String(), want) {
					t.Errorf("%s: unexpected error %s", u.name, d)
				}
				msgs = append(msgs, mdEscape(strings.TrimPrefix(line, "./"+u.name+" ")))
			}
			for _, w := range want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%s: no error contains %q; got:\n%v", u.name, w, err)
				}
			}
			result = "rejected: " + strings.Join(msgs, "<br>")
		}
		fmt.Fprintf(doc, "| `%s` | %s |\n", u.name, result)
	}
	return n
}

// onlyMissingRefs reports whether every error of e is a reference to a
// ConfigMap or Secret the unit does not declare.
func onlyMissingRefs(e *Error) bool {
	found := false
	for _, d := range e.Diagnostics {
		if d.Severity != SeverityError {
			continue
		}
		if !strings.Contains(d.Message, " is not declared in this revision") {
			return false
		}
		found = true
	}
	return found
}

func (n corpusCounts) String() string {
	return fmt.Sprintf("%d units: %d load, %d load once the ConfigMaps and Secrets they name (declared in other files of their project) are present, %d are rejected, each for a named reason.",
		n.units, n.loaded, n.needs, n.rejected)
}

// TestCorpus loads every unit of both conformance corpora on its own. A
// unit either loads, needs only ConfigMaps or Secrets of other files, or
// fails only with the errors corpusRejected or realWorldRejected expect.
// The results are written to docs/conformance.md (BERTH_UPDATE=1
// regenerates it).
func TestCorpus(t *testing.T) {
	k8s := corpusUnits(t, corpus.Dir(t, corpus.K8sExamples))
	real := corpusUnits(t, corpus.Dir(t, corpus.RealWorld))
	if len(k8s) != 78 {
		t.Errorf("Kubernetes examples: %d manifests, want 78", len(k8s))
	}
	if len(real) != 120 {
		t.Errorf("real-world corpus: %d units, want 120", len(real))
	}
	var doc strings.Builder
	doc.WriteString(conformanceHeader)
	doc.WriteString(k8sExamplesHeader)
	n := runCorpus(t, &doc, k8s, corpusRejected)
	fmt.Fprintf(&doc, "\n%s\n", n)
	doc.WriteString(realWorldHeader)
	n = runCorpus(t, &doc, real, realWorldRejected)
	fmt.Fprintf(&doc, "\n%s\n", n)
	checkGolden(t, "../docs/conformance.md", doc.String())
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "<", "&lt;", ">", "&gt;", "\n", " ").Replace(s)
}

// checkGolden compares got with the file at path, or rewrites the file
// when BERTH_UPDATE is set.
func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	if os.Getenv("BERTH_UPDATE") != "" {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v; run with BERTH_UPDATE=1", err)
	}
	if string(want) != got {
		t.Errorf("%s is out of date; run BERTH_UPDATE=1 go test ./schema -run %s", path, t.Name())
	}
}

const conformanceHeader = `# Conformance: Kubernetes manifests users already have

berth loads the Kubernetes YAML users already have. This page lists what
` + "`berth vet`" + ` makes of two corpora kept next to the repository, not in it:

- the **Kubernetes website's examples** (78 files,
  ` + "`../shared/conformance/k8s-examples`" + `, or ` + "`BERTH_K8S_EXAMPLES`" + `), and
- **real-world manifests** of 18 well-known projects (120 units,
  ` + "`../shared/conformance/real-world`" + `, or ` + "`BERTH_REAL_WORLD`" + `; its SOURCES.md
  names each file's repository, commit and license).

Each file is loaded on its own (a CUE module with ` + "`cue.mod`" + ` as one unit), for a
node named node-1 with the labels kubelet sets on an amd64 Linux host. It is
generated by ` + "`BERTH_UPDATE=1 go test ./schema -run TestCorpus`" + `; the test fails
when a unit that should load does not, or when a rejected unit fails for any
reason other than the one named for it. Without the corpora the test is
skipped; ` + "`BERTH_CONFORMANCE=required`" + ` (as CI sets) makes that a failure.

A unit either **loads**; or **needs** ConfigMaps or Secrets it refers to that
other files of its project declare (within one revision, a reference to a
ConfigMap or Secret the revision lacks is an error at the reference, unless
` + "`optional: true`" + `); or is **rejected**, each error naming the field and why.

Warnings name kinds berth does not run on a host (Service,
PersistentVolumeClaim, PodDisruptionBudget, RBAC, …); they are skipped, and
` + "`berth vet --strict`" + ` makes them errors.

How single-host berth reads scheduling fields:

- ` + "`nodeName`, `nodeSelector` and required `nodeAffinity`" + ` decide whether an
  object applies on this node (its name from ` + "`--node-name`" + `, labels from
  ` + "`--node-label`" + ` and ` + "`--node-labels-file`" + `, on top of the labels kubelet sets:
  ` + "`kubernetes.io/hostname`, `kubernetes.io/os`, `kubernetes.io/arch`" + ` and their
  ` + "`beta.`" + ` forms). A DaemonSet runs one pod here when its template matches the
  node. ` + "`berth vet` and `berth plan`" + ` name each object that is not for this
  node, and why.
- Preferred node affinity, preferred pod (anti-)affinity and ` + "`tolerations`" + ` are
  accepted and decide nothing: a host has no taints, and there is no other node
  to prefer.
- Required pod affinity and anti-affinity, topology spread, scheduling gates,
  priority and other schedulers are rejected by name: they place pods across a
  cluster.
`

const k8sExamplesHeader = `
## Kubernetes website examples

| file | result |
|---|---|
`

const realWorldHeader = `
## Real-world manifests

| unit | result |
|---|---|
`

// realWorldRejected lists the real-world units that must not load, each
// with a phrase every one of its errors must contain.
var realWorldRejected = map[string][]string{
	"cue-tutorial/k8s_defs.cue":                             {"import failed: cannot find package \"k8s.io/api/apps/v1\": cannot find module providing package k8s.io/api/apps/v1"},
	"cue-tutorial/mon_alertmanager_configmap.cue":           {"metadata: required field is missing"},
	"cuevana/cue-module/":                                   {"import failed: cannot find package \"github.com/k8s-1/cuevana/values\": no files in package directory with package name \"values\" (3 files were excluded)"},
	"flannel/kube-flannel.yml":                              {"priorityClassName: field not supported by berth: pod priority and preemption need a cluste"},
	"ingress-nginx/baremetal-deploy.yaml":                   {"automountServiceAccountToken: must be false: berth has no API server and mounts no service", "kind: \"ValidatingWebhookConfiguration\" is not supported by berth; supported kinds: ConfigM"},
	"intel-device-plugins/dsa-dpdk-dmadevtest.yaml":         {"medium: must be one of \"\", Memory"},
	"intel-device-plugins/intel-fpga-plugin-daemonset.yaml": {"terminationMessagePath: must be \"/dev/termination-log\": berth reads no termination message", "seLinuxOptions: field not supported by berth: SELinux options are not supported"},
	"intel-device-plugins/intel-gpu-plugin.yaml":            {"seLinuxOptions: field not supported by berth: SELinux options are not supported"},
	"intel-device-plugins/intel-qat-plugin.yaml":            {"seLinuxOptions: field not supported by berth: SELinux options are not supported"},
	"intel-device-plugins/intel-sgx-aesmd.yaml":             {"com/epc\": extended resource \"sgx.intel.com/epc\" is not supported: berth accounts only for ", "is not declared in this revision"},
	"intel-device-plugins/intelgpu-job.yaml":                {"com/i915\": extended resource \"gpu.intel.com/i915\" is not supported: berth accounts only fo"},
	"k3s/local-storage.yaml":                                {"priorityClassName: field not supported by berth: pod priority and preemption need a cluste"},
	"k8s-examples-repo/ds.yaml":                             {"apiVersion: extensions/v1beta1 DaemonSet is no longer served by Kubernetes; use apiVersion"},
	"k8s-examples-repo/etcd-controller.yaml":                {"duplicate key \"selector\": already set on line 6 of this mapping (kubectl refuses such a fi"},
	"k8s-examples-repo/guestbook-controller.yaml":           {"kind: \"ReplicationController\" is not supported by berth; supported kinds: ConfigMap, CronJ"},
	"k8s-examples-repo/iscsi.yaml":                          {"iscsi: field not supported by berth: volume source iscsi is not supported; berth supports "},
	"k8s-examples-repo/minio-distributed-statefulset.yaml":  {"0: host port 9000/TCP would be bound by each of the 4 pods of StatefulSet/default/minio on"},
	"k8s-examples-repo/minio-standalone-deployment.yaml":    {"persistentVolumeClaim: field not supported by berth: a host has no PersistentVolumes; use "},
	"k8s-examples-repo/mongo-pod.json":                      {"gcePersistentDisk: field not supported by berth: volume source gcePersistentDisk is not su"},
	"k8s-examples-repo/mysql.yaml":                          {"cinder: field not supported by berth: volume source cinder is not supported; berth support"},
	"k8s-examples-repo/newrelic-infra-daemonset.yaml":       {"apiVersion: extensions/v1beta1 DaemonSet is no longer served by Kubernetes; use apiVersion"},
	"k8s-examples-repo/nfs-server-deployment.yaml":          {"persistentVolumeClaim: field not supported by berth: a host has no PersistentVolumes; use "},
	"k8s-examples-repo/nginx-app.yaml":                      {"kind: \"ReplicationController\" is not supported by berth; supported kinds: ConfigMap, CronJ"},
	"k8s-examples-repo/openshift-controller.yaml":           {"duplicate key \"selector\": already set on line 8 of this mapping (kubectl refuses such a fi"},
	"k8s-examples-repo/tf-serving-deployment.yaml":          {"persistentVolumeClaim: field not supported by berth: a host has no PersistentVolumes; use "},
	"k8s-examples-repo/vllm-deployment.yaml":                {"com/gpu\": extended resource \"nvidia.com/gpu\" is not supported: berth accounts only for cpu", "\"ephemeral-storage\": field not supported by berth: an ephemeral-storage limit is not enfor", "is not declared in this revision"},
	"k8s-examples-repo/vttablet-pod-template.yaml":          {"name: must be a DNS-1123 subdomain: lower-case alphanumerics, '-' or '.', starting and end", "keyspace: must be a label value: empty, or at most 63 alphanumerics, '-', '_' or '.', star", "shard: must be a label value: empty, or at most 63 alphanumerics, '-', '_' or '.', startin", "tablet: must be a label value: empty, or at most 63 alphanumerics, '-', '_' or '.', starti"},
	"kelseyhightower/consul-statefulset.yaml":               {"requiredDuringSchedulingIgnoredDuringExecution: field not supported by berth: required pod"},
	"kube-prometheus/blackboxExporter-deployment.yaml":      {"automountServiceAccountToken: must be false: berth has no API server and mounts no service"},
	"kube-prometheus/kubeStateMetrics-deployment.yaml":      {"automountServiceAccountToken: must be false: berth has no API server and mounts no service"},
	"kube-prometheus/nodeExporter-daemonset.yaml":           {"automountServiceAccountToken: must be false: berth has no API server and mounts no service", "priorityClassName: field not supported by berth: pod priority and preemption need a cluste"},
	"kube-prometheus/prometheusAdapter-deployment.yaml":     {"automountServiceAccountToken: must be false: berth has no API server and mounts no service"},
	"kube-prometheus/prometheusOperator-deployment.yaml":    {"automountServiceAccountToken: must be false: berth has no API server and mounts no service"},
	"kubeedge-examples/kubeedge-pi-counter-app.yaml":        {"duplicate key \"nodeSelector\": already set on line 17 of this mapping (kubectl refuses such"},
	"kubeedge-examples/led-raspberrypi_deployment.yaml":     {"name: must be a DNS-1123 subdomain: lower-case alphanumerics, '-' or '.', starting and end"},
	"kubernetes/deploy-clientside.yaml":                     {"apiVersion: extensions/v1beta1 Deployment is no longer served by Kubernetes; use apiVersio"},
	"kubernetes/gce-pd-node_ds.yaml":                        {"serviceName: field not supported by berth"},
	"kubernetes/zookeeper-statefulset.yaml":                 {"apiVersion: apps/v1beta1 StatefulSet is no longer served by Kubernetes; use apiVersion \"ap"},
	"local-path-provisioner/pod-with-security-context.yaml": {"persistentVolumeClaim: field not supported by berth: a host has no PersistentVolumes; use "},
	"podinfo/kustomize_kustomization.yaml":                  {"kind: \"Kustomization\" is not supported by berth; supported kinds: ConfigMap, CronJob, Daem"},
	"podinfo/statefulset-primary.yaml":                      {"persistentVolumeClaim: field not supported by berth: a host has no PersistentVolumes; use "},
}

// TestSockShopPlans14Pods expands Sock Shop's complete demo, which selects
// nodes by the labels kubelet sets (beta.kubernetes.io/os: linux), for an
// amd64 Linux host: all 14 pods are for it. On a node without kubelet's
// labels none would be, and reconcile.NotForNodes says why.
func TestSockShopPlans14Pods(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(corpus.Dir(t, corpus.RealWorld), "sock-shop", "complete-demo.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	host := reconcile.KubeletNode("host-1", "linux", "amd64", nil)
	res, err := Load(fstest.MapFS{"complete-demo.yaml": {Data: data}}, Options{Node: host})
	if err != nil {
		t.Fatal(err)
	}
	pods, err := reconcile.Expand(res.Objects, "rev", reconcile.ExpandOptions{Node: host, StateDir: t.TempDir()})
	if err != nil || len(pods) != 14 {
		t.Errorf("Expand on %s: %d pods, %v; want 14", host, len(pods), err)
	}
	if skipped := reconcile.NotForNodes(res.Objects, host); len(skipped) != 0 {
		t.Errorf("not for an amd64 Linux host: %v", skipped)
	}
	bare := reconcile.Node{Name: "host-1"}
	skipped := reconcile.NotForNodes(res.Objects, bare)
	if len(skipped) != 14 || !strings.Contains(skipped[0].Reason, `node has no label "beta.kubernetes.io/os"`) {
		t.Errorf("on a node without kubelet's labels: %d objects not for it (%v), want 14 naming beta.kubernetes.io/os", len(skipped), skipped)
	}
}

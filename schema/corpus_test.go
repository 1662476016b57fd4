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
)

// corpusRejected lists the corpus files that must not load, each with a
// phrase every one of its errors must contain: each names the unsupported
// feature or the exact mistake. Every other file must load.
var corpusRejected = map[string][]string{
	"admin/konnectivity/konnectivity-server.yaml":          {"priorityClassName: field not supported by berth: pod priority"},
	"admin/sched/pod3.yaml":                                {"schedulerName: field not supported by berth"},
	"application/job/cronjob.yaml":                         {`batch/v1beta1 CronJob is no longer served by Kubernetes; use apiVersion "batch/v1"`},
	"application/wordpress/mysql-deployment.yaml":          {"persistentVolumeClaim: field not supported by berth: a host has no PersistentVolumes"},
	"application/zookeeper/zookeeper.yaml":                 {"podAntiAffinity: field not supported by berth: pod anti-affinity"},
	"controllers/job-backoff-limit-per-index-example.yaml": {"backoffLimitPerIndex: field not supported by berth", "maxFailedIndexes: field not supported by berth"},
	"controllers/job-pod-failure-policy-example.yaml":      {"podFailurePolicy: field not supported by berth"},
	"pods/image-volumes.yaml":                              {"image: field not supported by berth: image volumes"},
	"pods/multi-container/shared-volume.yaml":              {"sizeLimit: field not supported by berth: the size of an emptyDir on disk is not limited"},
	"pods/pod-projected-svc-token.yaml":                    {"serviceAccountToken: field not supported by berth: service account tokens"},
	"pods/pod-with-node-affinity.yaml":                     {"requiredDuringSchedulingIgnoredDuringExecution: must be an object, got list"},
	"pods/pod-with-scheduling-gates.yaml":                  {"schedulingGates: field not supported by berth: scheduling gates"},
	"pods/private-reg-pod.yaml":                            {`"<your-private-image>" is not a valid image reference`},
	"pods/resource/extended-resource-pod.yaml":             {`extended resource "example.com/dongle" is not supported`},
	"pods/resource/pod-level-resources.yaml":               {"spec.resources: field not supported by berth: pod-level resources"},
	"pods/resource/pod-resize.yaml":                        {"resizePolicy: field not supported by berth: in-place resize"},
	"pods/restart-policy/restart-all-containers.yaml":      {"restartPolicyRules: field not supported by berth: container restart rules"},
	"pods/storage/pv-pod.yaml":                             {"persistentVolumeClaim: field not supported by berth: a host has no PersistentVolumes"},
}

// TestCorpus loads every manifest of the corpus on its own. A file either
// loads, or fails only with the errors corpusRejected expects. The results
// are written to docs/conformance.md (BERTH_UPDATE=1 regenerates it).
func TestCorpus(t *testing.T) {
	corpusDir := corpus.Dir(t, corpus.K8sExamples)
	var files []string
	err := filepath.WalkDir(corpusDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			rel, _ := filepath.Rel(corpusDir, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil || len(files) == 0 {
		t.Fatalf("the conformance corpus must be at %s (next to the repository): %v", corpusDir, err)
	}
	if len(files) != 78 {
		t.Errorf("corpus has %d manifests, want 78", len(files))
	}
	slices.Sort(files)
	var doc strings.Builder
	doc.WriteString(conformanceHeader)
	loaded := 0
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(corpusDir, f))
		if err != nil {
			t.Fatal(err)
		}
		res, err := Load(fstest.MapFS{f: {Data: data}}, Options{})
		want, rejected := corpusRejected[f]
		var result string
		switch {
		case err == nil:
			loaded++
			var kinds []string
			for _, o := range res.Objects {
				kinds = append(kinds, o.Kind+" "+o.Metadata.Name)
			}
			result = "loads: " + strings.Join(kinds, ", ")
			for _, w := range res.Warnings {
				result += "<br>warning: " + mdEscape(w.Path+": "+w.Message)
			}
			if rejected {
				t.Errorf("%s loads, want errors containing %q", f, want)
			}
		default:
			var lerr *Error
			if !errors.As(err, &lerr) {
				t.Fatalf("%s: %v", f, err)
			}
			var msgs []string
			for _, d := range lerr.Diagnostics {
				line := fmt.Sprintf("line %d: %s", d.Pos.Line, d.Path+": "+d.Message)
				if d.Severity == SeverityWarning {
					line = "warning: " + d.Path + ": " + d.Message
				} else if !rejected || !containsAny(d.String(), want) {
					t.Errorf("%s: unexpected error %s", f, d)
				}
				msgs = append(msgs, mdEscape(line))
			}
			for _, w := range want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%s: no error contains %q; got:\n%v", f, w, err)
				}
			}
			result = "rejected: " + strings.Join(msgs, "<br>")
		}
		fmt.Fprintf(&doc, "| `%s` | %s |\n", f, result)
	}
	fmt.Fprintf(&doc, "\n%d of %d files load; %d are rejected, each for a named reason.\n", loaded, len(files), len(files)-loaded)
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

const conformanceHeader = `# Conformance: Kubernetes example manifests

berth loads the Kubernetes YAML users already have. This page lists every
manifest of the conformance corpus (78 files from the Kubernetes website,
kept in ` + "`../shared/conformance/k8s-examples`" + ` next to the repository; see its
SOURCES.md) with what ` + "`berth vet`" + ` makes of it when the file is loaded on its
own. It is generated by ` + "`BERTH_UPDATE=1 go test ./schema -run TestCorpus`" + `;
the test fails when a file that should load does not, or when a rejected file
fails for any reason other than the named unsupported feature.

Warnings name kinds berth does not run on a host (Service,
PersistentVolumeClaim, PodDisruptionBudget); they are skipped, and
` + "`berth vet --strict`" + ` makes them errors. References between files
(a Pod using a ConfigMap of another file) are resolved when the pods are
planned, not here.

How single-host berth reads scheduling fields:

- ` + "`nodeName`, `nodeSelector` and required `nodeAffinity`" + ` decide whether an
  object applies on this node (its name from ` + "`--node-name`" + `, labels from
  ` + "`--node-label`" + ` and ` + "`--node-labels-file`" + `). A DaemonSet runs one pod here when
  its template matches the node.
- Preferred node affinity and ` + "`tolerations`" + ` are accepted and decide nothing:
  a host has no taints, and there is no other node to prefer.
- Pod affinity and anti-affinity, topology spread, scheduling gates, priority
  and other schedulers are rejected by name: they place pods across a cluster.

| file | result |
|---|---|
`

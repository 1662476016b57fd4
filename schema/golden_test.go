package schema

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/tools/txtar"

	"berth.dev/berth/reconcile"
)

// The golden files in testdata/schema are txtar archives: the comment says
// what the case is about, the files are the repository, and the file "want"
// holds what Load returns: its diagnostics one per line, or the objects. An
// optional file "options" sets the node and strict mode (see goldenOptions).
// BERTH_UPDATE=1 go test ./schema rewrites "want".

const goldenDir = "../testdata/schema"

func TestGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.txtar"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files in %s: %v", goldenDir, err)
	}
	update := os.Getenv("BERTH_UPDATE") != ""
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			ar, err := txtar.ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			fsys := fstest.MapFS{}
			wantIdx := -1
			var opts Options
			for i, f := range ar.Files {
				switch f.Name {
				case "want":
					wantIdx = i
					continue
				case "options":
					opts = goldenOptions(t, string(f.Data))
					continue
				}
				fsys[f.Name] = &fstest.MapFile{Data: f.Data, Mode: 0o644}
			}
			res, err := Load(fsys, opts)
			got := render(t, res, err)
			if update {
				if wantIdx >= 0 {
					ar.Files = slices.Delete(ar.Files, wantIdx, wantIdx+1)
				}
				ar.Files = append(ar.Files, txtar.File{Name: "want", Data: []byte(got)})
				if err := os.WriteFile(file, txtar.Format(ar), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if wantIdx < 0 {
				t.Fatalf("no want file; run with BERTH_UPDATE=1")
			}
			if diff := cmp.Diff(string(ar.Files[wantIdx].Data), got); diff != "" {
				t.Errorf("Load mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// goldenOptions reads the "options" file of a golden archive: lines
// "node NAME", "label KEY=VALUE" and "strict".
func goldenOptions(t *testing.T, text string) Options {
	t.Helper()
	var opts Options
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		word, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch word {
		case "node":
			opts.Node.Name = arg
		case "label":
			k, v, _ := strings.Cut(arg, "=")
			if opts.Node.Labels == nil {
				opts.Node.Labels = map[string]string{}
			}
			opts.Node.Labels[k] = v
		case "strict":
			opts.Strict = true
		default:
			t.Fatalf("options: unknown line %q", line)
		}
	}
	return opts
}

// render prints what Load returned for a golden file.
func render(t *testing.T, res *Result, err error) string {
	t.Helper()
	var b bytes.Buffer
	if err != nil {
		var lerr *Error
		if !errors.As(err, &lerr) {
			t.Fatalf("Load returned a plain error: %v", err)
		}
		b.WriteString(err.Error())
		b.WriteString("\n")
		return b.String()
	}
	for _, w := range res.Warnings {
		fmt.Fprintln(&b, w)
	}
	for _, o := range res.Objects {
		fmt.Fprintf(&b, "%s at %s\n", o.Key(), o.Source)
		view := struct {
			APIVersion  string                     `json:"apiVersion"`
			Metadata    reconcile.ObjectMeta       `json:"metadata"`
			Pod         *reconcile.PodSpec         `json:"pod,omitempty"`
			Deployment  *reconcile.DeploymentSpec  `json:"deployment,omitempty"`
			ReplicaSet  *reconcile.ReplicaSetSpec  `json:"replicaSet,omitempty"`
			DaemonSet   *reconcile.DaemonSetSpec   `json:"daemonSet,omitempty"`
			StatefulSet *reconcile.StatefulSetSpec `json:"statefulSet,omitempty"`
			Job         *reconcile.JobSpec         `json:"job,omitempty"`
			CronJob     *reconcile.CronJobSpec     `json:"cronJob,omitempty"`
			ConfigMap   *reconcile.ConfigMapData   `json:"configMap,omitempty"`
			Secret      any                        `json:"secret,omitempty"`
		}{APIVersion: o.APIVersion, Metadata: o.Metadata, Pod: o.Pod, Deployment: o.Deployment,
			ReplicaSet: o.ReplicaSet, DaemonSet: o.DaemonSet, StatefulSet: o.StatefulSet, Job: o.Job,
			CronJob: o.CronJob, ConfigMap: o.ConfigMap}
		if o.Secret != nil {
			// Secret values are shown by digest only, as berth itself
			// treats them.
			digests := map[string]string{}
			for k, v := range o.Secret.Data {
				digests[k] = fmt.Sprintf("sha256:%x", sha256.Sum256(v))[:19]
			}
			view.Secret = map[string]any{"type": o.Secret.Type, "immutable": o.Secret.Immutable, "data": digests}
		}
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(view); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

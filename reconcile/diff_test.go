package reconcile_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/reconcile"
)

func diffPod(mut func(p *reconcile.DesiredPod)) *reconcile.DesiredPod {
	p := &reconcile.DesiredPod{
		ID:     reconcile.PodID{Namespace: "default", Name: "web"},
		Labels: map[string]string{"app": "web"},
		Spec: reconcile.NormalizeSpec(reconcile.PodSpec{
			Containers: []reconcile.Container{{
				Name: "web", Image: "nginx:1.27", Args: []string{"-g", "daemon off;"},
				Env:          []reconcile.EnvVar{{Name: "MODE", Value: "prod"}, {Name: "LEVEL", Value: "info"}},
				Resources:    &reconcile.ResourceRequirements{Limits: map[string]string{"memory": "64Mi"}},
				VolumeMounts: []reconcile.VolumeMount{{Name: "conf", MountPath: "/etc/nginx/conf.d"}},
			}},
			Volumes: []reconcile.Volume{{Name: "conf", ConfigMap: &reconcile.ConfigMapVolumeSource{Name: "web"}}},
		}),
		ConfigMaps: map[string]*reconcile.ConfigMapData{"web": {Data: map[string]string{"site.conf": "listen 80;\nroot /srv;\n"}}},
		Secrets:    map[string]*reconcile.SecretData{"db": {Type: "Opaque", Data: map[string][]byte{"password": []byte("hunter2-old")}}},
	}
	if mut != nil {
		mut(p)
	}
	return p
}

func TestDiffPods(t *testing.T) {
	tests := []struct {
		name string
		mut  func(p *reconcile.DesiredPod)
		want []reconcile.FieldChange
	}{
		{name: "same", mut: func(p *reconcile.DesiredPod) {}},
		{
			name: "image",
			mut:  func(p *reconcile.DesiredPod) { p.Spec.Containers[0].Image = "nginx:1.28" },
			want: []reconcile.FieldChange{{Path: "spec.containers[web].image", Op: reconcile.FieldChanged, From: "nginx:1.27", To: "nginx:1.28"}},
		},
		{
			name: "args shown whole",
			mut:  func(p *reconcile.DesiredPod) { p.Spec.Containers[0].Args = []string{"-g", "daemon on;"} },
			want: []reconcile.FieldChange{{Path: "spec.containers[web].args", Op: reconcile.FieldChanged, From: `["-g","daemon off;"]`, To: `["-g","daemon on;"]`}},
		},
		{
			name: "env changed, removed and added in place",
			mut: func(p *reconcile.DesiredPod) {
				p.Spec.Containers[0].Env = []reconcile.EnvVar{{Name: "LEVEL", Value: "debug"}, {Name: "NEW", Value: "1"}}
			},
			want: []reconcile.FieldChange{
				{Path: "spec.containers[web].env[MODE].value", Op: reconcile.FieldRemoved, From: "prod"},
				{Path: "spec.containers[web].env[LEVEL].value", Op: reconcile.FieldChanged, From: "info", To: "debug"},
				{Path: "spec.containers[web].env[NEW].value", Op: reconcile.FieldAdded, To: "1"},
			},
		},
		{
			name: "resources",
			mut: func(p *reconcile.DesiredPod) {
				p.Spec.Containers[0].Resources = &reconcile.ResourceRequirements{Limits: map[string]string{"memory": "128Mi", "cpu": "500m"}}
			},
			want: []reconcile.FieldChange{
				{Path: "spec.containers[web].resources.limits.cpu", Op: reconcile.FieldAdded, To: "500m"},
				{Path: "spec.containers[web].resources.limits.memory", Op: reconcile.FieldChanged, From: "64Mi", To: "128Mi"},
			},
		},
		{
			name: "mount path",
			mut:  func(p *reconcile.DesiredPod) { p.Spec.Containers[0].VolumeMounts[0].MountPath = "/etc/nginx" },
			want: []reconcile.FieldChange{{Path: "spec.containers[web].volumeMounts[conf].mountPath", Op: reconcile.FieldChanged, From: "/etc/nginx/conf.d", To: "/etc/nginx"}},
		},
		{
			name: "label with punctuation",
			mut: func(p *reconcile.DesiredPod) {
				p.Labels = map[string]string{"app": "web", "app.kubernetes.io/part-of": "shop"}
			},
			want: []reconcile.FieldChange{{Path: `metadata.labels["app.kubernetes.io/part-of"]`, Op: reconcile.FieldAdded, To: "shop"}},
		},
		{
			name: "mounted config",
			mut: func(p *reconcile.DesiredPod) {
				p.ConfigMaps = map[string]*reconcile.ConfigMapData{"web": {Data: map[string]string{"site.conf": "listen 8080;\nroot /srv;\n"}}}
			},
			want: []reconcile.FieldChange{{Path: `configMap[web].data["site.conf"]`, Op: reconcile.FieldChanged, From: "listen 80;\nroot /srv;\n", To: "listen 8080;\nroot /srv;\n"}},
		},
		{
			name: "secret value",
			mut: func(p *reconcile.DesiredPod) {
				p.Secrets = map[string]*reconcile.SecretData{"db": {Type: "Opaque", Data: map[string][]byte{"password": []byte("hunter2-new"), "user": []byte("admin-name")}}}
			},
			want: []reconcile.FieldChange{
				{Path: "secret[db]", Op: reconcile.FieldChanged, From: "1 key", To: "2 keys"},
				{Path: "secret[db].data.password", Op: reconcile.FieldChanged, Secret: true},
				{Path: "secret[db].data.user", Op: reconcile.FieldAdded, Secret: true},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := reconcile.DiffPods(diffPod(nil), diffPod(tt.mut))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("DiffPods (-want +got):\n%s", diff)
			}
			// Secret content appears in no form of the diff.
			b, _ := json.Marshal(got)
			var text strings.Builder
			for _, c := range got {
				text.WriteString(c.String())
			}
			for _, s := range []string{string(b), text.String()} {
				if strings.Contains(s, "hunter2") || strings.Contains(s, "admin-name") {
					t.Errorf("secret value leaked: %s", s)
				}
			}
		})
	}
}

func TestDiffPodsCreateDelete(t *testing.T) {
	p := diffPod(nil)
	added := reconcile.DiffPods(nil, p)
	removed := reconcile.DiffPods(p, nil)
	if len(added) == 0 || len(added) != len(removed) {
		t.Fatalf("added %d fields, removed %d", len(added), len(removed))
	}
	for i := range added {
		if added[i].Op != reconcile.FieldAdded || removed[i].Op != reconcile.FieldRemoved || added[i].Path != removed[i].Path {
			t.Errorf("field %d: added %+v, removed %+v", i, added[i], removed[i])
		}
	}
}

func TestFieldChangeString(t *testing.T) {
	tests := []struct {
		c    reconcile.FieldChange
		want string
	}{
		{reconcile.FieldChange{Path: "a", Op: reconcile.FieldChanged, From: "1", To: "2"}, "a: 1 → 2"},
		{reconcile.FieldChange{Path: "a", Op: reconcile.FieldAdded, To: "2"}, "a: added 2"},
		{reconcile.FieldChange{Path: "a", Op: reconcile.FieldRemoved, From: "1"}, "a: removed (was 1)"},
		{reconcile.FieldChange{Path: "a", Op: reconcile.FieldChanged, Secret: true}, "a: (secret changed)"},
		{reconcile.FieldChange{Path: "a", Op: reconcile.FieldChanged, From: "x\ny\n", To: "x\n"}, "a: (2 lines) → (1 lines)"},
	}
	for _, tt := range tests {
		if got := tt.c.String(); got != tt.want {
			t.Errorf("%+v: got %q, want %q", tt.c, got, tt.want)
		}
	}
}

package admit_test

import (
	"strings"
	"testing"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/reconcile/admit"
)

func pod(name, owner string) *reconcile.DesiredPod {
	return &reconcile.DesiredPod{
		ID: reconcile.PodID{Namespace: "default", Name: name}, Owner: owner,
		Spec: reconcile.PodSpec{Containers: []reconcile.Container{{Name: "app", Image: "busybox"}}},
	}
}

func TestClaimDirsOnlyForTheirOwnPod(t *testing.T) {
	state := "/var/lib/berth"
	pol := admit.Policy{Node: reconcile.WithClaimDirs(reconcile.NodePolicy{}, state), StateDir: state}
	claim := func(p *reconcile.DesiredPod, path string) *reconcile.DesiredPod {
		p.Spec.Volumes = []reconcile.Volume{{Name: "data", HostPath: &reconcile.HostPathVolumeSource{Path: path, Type: "DirectoryOrCreate"}}}
		return p
	}
	own := reconcile.ClaimDir(state, "default", "data", "db", 1)
	for _, tc := range []struct {
		name string
		pod  *reconcile.DesiredPod
		ok   bool
	}{
		{"own claim", claim(pod("db-1", "StatefulSet/default/db"), own), true},
		{"sibling's claim", claim(pod("db-0", "StatefulSet/default/db"), own), false},
		{"a Deployment", claim(pod("web-abc", "Deployment/default/web"), own), false},
		{"below own claim", claim(pod("db-1", "StatefulSet/default/db"), own+"/link"), false},
		{"claims root", claim(pod("db-1", "StatefulSet/default/db"), reconcile.ClaimsRoot(state)), false},
		{"pods dir", claim(pod("x", "Pod/default/x"), state+"/pods"), false},
		{"dot-dot out of state", claim(pod("x", "Pod/default/x"), state+"/volumes/../../etc"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := admit.Check(tc.pod, pol)
			if (err == nil) != tc.ok {
				t.Errorf("Check = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestCheckRefusesByField(t *testing.T) {
	yes := true
	for _, tc := range []struct {
		name, want string
		pol        reconcile.NodePolicy
		mut        func(*reconcile.DesiredPod)
	}{
		{"procMount", "spec.containers[0].securityContext.procMount", reconcile.NodePolicy{}, func(p *reconcile.DesiredPod) {
			p.Spec.Containers[0].SecurityContext = &reconcile.SecurityContext{ProcMount: "Unmasked"}
		}},
		{"pod seccomp", "spec.securityContext.seccompProfile.type", reconcile.NodePolicy{}, func(p *reconcile.DesiredPod) {
			p.Spec.SecurityContext = &reconcile.PodSecurityContext{SeccompProfile: &reconcile.SeccompProfile{Type: "Unconfined"}}
		}},
		{"host sysctl even when privileged", `"vm.overcommit_memory" is not namespaced`, reconcile.NodePolicy{Privileged: true}, func(p *reconcile.DesiredPod) {
			p.Spec.SecurityContext = &reconcile.PodSecurityContext{Sysctls: []reconcile.Sysctl{{Name: "vm.overcommit_memory", Value: "1"}}}
		}},
		{"net sysctl with hostNetwork", "spec.securityContext.sysctls[0].name", reconcile.NodePolicy{Privileged: true, HostNamespaces: true}, func(p *reconcile.DesiredPod) {
			p.Spec.HostNetwork = true
			p.Spec.SecurityContext = &reconcile.PodSecurityContext{Sysctls: []reconcile.Sysctl{{Name: "net.ipv4.tcp_syncookies", Value: "1"}}}
		}},
		{"bidirectional even with the policy", "volumeMounts[0].mountPropagation", reconcile.NodePolicy{Privileged: true}, func(p *reconcile.DesiredPod) {
			p.Spec.Volumes = []reconcile.Volume{{Name: "v", EmptyDir: &reconcile.EmptyDirVolumeSource{}}}
			p.Spec.Containers[0].VolumeMounts = []reconcile.VolumeMount{{Name: "v", MountPath: "/v", MountPropagation: "Bidirectional"}}
		}},
		{"secret key ..", `Secret "s": key ".." is not a file name`, reconcile.NodePolicy{}, func(p *reconcile.DesiredPod) {
			p.Secrets = map[string]*reconcile.SecretData{"s": {Data: map[string][]byte{"..": []byte("x")}}}
			p.Spec.Volumes = []reconcile.Volume{{Name: "v", Projected: &reconcile.ProjectedVolumeSource{Sources: []reconcile.VolumeProjection{{Secret: &reconcile.SecretProjection{Name: "s"}}}}}}
		}},
		{"item path ..", "spec.volumes[0].configMap.items[0].path", reconcile.NodePolicy{}, func(p *reconcile.DesiredPod) {
			p.Spec.Volumes = []reconcile.Volume{{Name: "v", ConfigMap: &reconcile.ConfigMapVolumeSource{Name: "c", Items: []reconcile.KeyToPath{{Key: "k", Path: "a/../../x"}}}}}
		}},
		{"env from secret with NUL", `Secret "s" key "k" contains a NUL byte`, reconcile.NodePolicy{}, func(p *reconcile.DesiredPod) {
			p.Secrets = map[string]*reconcile.SecretData{"s": {Data: map[string][]byte{"k": []byte("a\x00")}}}
			p.Spec.Containers[0].EnvFrom = []reconcile.EnvFromSource{{SecretRef: &reconcile.OptionalRef{Name: "s"}}}
		}},
		{"subPath ..", "spec.containers[0].volumeMounts[0].subPath", reconcile.NodePolicy{}, func(p *reconcile.DesiredPod) {
			p.Spec.Volumes = []reconcile.Volume{{Name: "v", EmptyDir: &reconcile.EmptyDirVolumeSource{}}}
			p.Spec.Containers[0].VolumeMounts = []reconcile.VolumeMount{{Name: "v", MountPath: "/v", SubPath: "a/../.."}}
		}},
		{"negative memory request", "spec.containers[0].resources.requests.memory", reconcile.NodePolicy{}, func(p *reconcile.DesiredPod) {
			p.Spec.Containers[0].Resources = &reconcile.ResourceRequirements{Requests: map[string]string{"memory": "-5Mi"}}
		}},
		{"privileged without policy", "--allow-privileged", reconcile.NodePolicy{}, func(p *reconcile.DesiredPod) {
			p.Spec.Containers[0].SecurityContext = &reconcile.SecurityContext{Privileged: &yes}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := pod("p", "Pod/default/p")
			tc.mut(p)
			if err := admit.Check(p, admit.Policy{Node: tc.pol}); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Check = %v, want it to name %q", err, tc.want)
			}
		})
	}
}

func TestCheckAllows(t *testing.T) {
	yes := true
	p := pod("p", "Pod/default/p")
	p.Spec.SecurityContext = &reconcile.PodSecurityContext{
		Sysctls:        []reconcile.Sysctl{{Name: "net.ipv4.ip_unprivileged_port_start", Value: "80"}},
		SeccompProfile: &reconcile.SeccompProfile{Type: "RuntimeDefault"},
	}
	p.Spec.Volumes = []reconcile.Volume{{Name: "v", EmptyDir: &reconcile.EmptyDirVolumeSource{SizeLimit: "64Mi"}}}
	p.Spec.Containers[0].VolumeMounts = []reconcile.VolumeMount{{Name: "v", MountPath: "/v", SubPath: "a/b", MountPropagation: "HostToContainer"}}
	p.Spec.Containers[0].Resources = &reconcile.ResourceRequirements{Limits: map[string]string{"cpu": "500m", "memory": "1Gi"}}
	if err := admit.Check(p, admit.Policy{}); err != nil {
		t.Errorf("an ordinary pod: %v", err)
	}
	p.Spec.Containers[0].SecurityContext = &reconcile.SecurityContext{Privileged: &yes, ProcMount: "Unmasked"}
	p.Spec.Containers[0].VolumeMounts[0].MountPropagation = "Bidirectional"
	p.Spec.SecurityContext.Sysctls = append(p.Spec.SecurityContext.Sysctls, reconcile.Sysctl{Name: "net.core.somaxconn", Value: "1024"})
	if err := admit.Check(p, admit.Policy{Node: reconcile.NodePolicy{Privileged: true}}); err != nil {
		t.Errorf("a privileged pod under --allow-privileged: %v", err)
	}
}

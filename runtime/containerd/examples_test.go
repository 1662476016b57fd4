package containerd_test

import (
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"berth.dev/berth/internal/corpus"
	"berth.dev/berth/reconcile"
	"berth.dev/berth/runtime/containerd"
	"berth.dev/berth/schema"
)

var imageRE = regexp.MustCompile(`(?m)(\bimage:\s*)"?[^"\s,}]+"?`)

// loadExample reads example files (and extra YAML documents), substitutes
// every image by the test image, validates them with the schema and
// expands them for node "testnode", returning the pod named pod.
func loadExample(t *testing.T, stateDir, pod string, files []string, extra string) *reconcile.DesiredPod {
	t.Helper()
	fsys := fstest.MapFS{}
	dir := corpus.Dir(t, corpus.K8sExamples)
	for i, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatalf("example %s: %v", f, err)
		}
		b = imageRE.ReplaceAll(b, []byte(`${1}"`+testImage+`"`))
		fsys["f"+strconv.Itoa(i)+"-"+filepath.Base(f)] = &fstest.MapFile{Data: b}
	}
	if extra != "" {
		fsys["extra.yaml"] = &fstest.MapFile{Data: []byte(extra)}
	}
	res, err := schema.Load(fsys, schema.Options{})
	if err != nil {
		t.Fatalf("schema.Load(%v): %v", files, err)
	}
	pods, err := reconcile.Expand(res.Objects, "rev-1", reconcile.ExpandOptions{Node: reconcile.Node{Name: "testnode"}, StateDir: stateDir})
	if err != nil {
		t.Fatalf("Expand: %v", err)
	}
	for i := range pods {
		if pods[i].ID.Name == pod {
			p := pods[i]
			g := int64(1)
			p.Spec.TerminationGracePeriodSeconds = &g
			return &p
		}
	}
	t.Fatalf("examples %v declare no pod %q", files, pod)
	return nil
}

func TestKubernetesExamples(t *testing.T) {
	const secretsAndConfig = `
apiVersion: v1
kind: Secret
metadata: {name: mysecret}
stringData: {username: admin}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: myconfigmap}
data: {config: "some config"}
`
	sleep := []string{"sleep", "3600"}
	for _, tc := range []struct {
		name, pod string
		files     []string
		extra     string
		// command replaces the command of every app container (for images
		// whose own command busybox does not have).
		command []string
		// exec runs in the first app container once it runs; without it,
		// the first app container's log after it exits is checked.
		exec []string
		// want is the exact output; {IP} stands for the pod's IP.
		want string
		// contains lists substrings of the output, when it is not exact.
		contains []string
	}{
		{name: "env fieldRef", pod: "dapi-envars-fieldref", files: []string{"pods/inject/dapi-envars-pod.yaml"},
			exec: printEnv("MY_NODE_NAME", "MY_POD_NAME", "MY_POD_NAMESPACE", "MY_POD_IP", "MY_POD_SERVICE_ACCOUNT"),
			want: "testnode\ndapi-envars-fieldref\ndefault\n{IP}\ndefault\n"},
		{name: "env resourceFieldRef", pod: "dapi-envars-resourcefieldref", files: []string{"pods/inject/dapi-envars-container.yaml"},
			exec: printEnv("MY_CPU_REQUEST", "MY_CPU_LIMIT", "MY_MEM_REQUEST", "MY_MEM_LIMIT"),
			want: "1\n1\n33554432\n67108864\n"},
		{name: "dependent env and $$ escape", pod: "dependent-envars-demo", files: []string{"pods/inject/dependent-envars.yaml"},
			exec: printEnv("SERVICE_ADDRESS", "UNCHANGED_REFERENCE", "ESCAPED_REFERENCE"),
			want: "https://172.17.0.1:80\n$(PROTOCOL)://172.17.0.1:80\n$(PROTOCOL)://172.17.0.1:80\n"},
		{name: "configMapKeyRef and $(VAR) in command", pod: "dapi-test-pod",
			files: []string{"pods/pod-configmap-env-var-valueFrom.yaml", "configmap/configmap-multikeys.yaml"},
			want:  "very charm\n"},
		{name: "envFrom configMapRef", pod: "dapi-test-pod",
			files:    []string{"pods/pod-configmap-envFrom.yaml", "configmap/configmap-multikeys.yaml"},
			contains: []string{"SPECIAL_LEVEL=very\n", "SPECIAL_TYPE=charm\n"}},
		{name: "envFrom secretRef", pod: "envfrom-secret", files: []string{"pods/inject/pod-secret-envFrom.yaml", "pods/inject/secret.yaml"},
			command: sleep, exec: printEnv("username", "password"), want: "my-app\n39528$vdg7Jb\n"},
		{name: "configMap volume", pod: "dapi-test-pod", files: []string{"pods/pod-configmap-volume.yaml", "configmap/configmap-multikeys.yaml"},
			want: "SPECIAL_LEVEL\nSPECIAL_TYPE\n"},
		{name: "secret volume", pod: "secret-test-pod", files: []string{"pods/inject/secret-pod.yaml", "pods/inject/secret.yaml"},
			command: sleep, exec: []string{"sh", "-c", "cat /etc/secret-volume/username; echo; cat /etc/secret-volume/password; echo; touch /etc/secret-volume/x 2>/dev/null && echo WRITABLE; stat -c %a /etc/secret-volume/username"},
			want: "my-app\n39528$vdg7Jb\n644\n"},
		{name: "downwardAPI volume", pod: "kubernetes-downwardapi-volume-example", files: []string{"pods/inject/dapi-volume.yaml"},
			exec: []string{"sh", "-c", "cat /etc/podinfo/labels; echo; cat /etc/podinfo/annotations"},
			want: "cluster=\"test-cluster1\"\nrack=\"rack-22\"\nzone=\"us-est-coast\"\nbuild=\"two\"\nbuilder=\"john-doe\""},
		{name: "projected volume", pod: "volume-test", files: []string{"pods/storage/projected-secret-downwardapi-configmap.yaml"}, extra: secretsAndConfig,
			exec: []string{"sh", "-c", "cat /projected-volume/my-group/my-username; echo; cat /projected-volume/my-group/my-config; echo; cat /projected-volume/cpu_limit"},
			want: "admin\nsome config\n" + strconv.Itoa(runtime.NumCPU())},
		{name: "hostAliases", pod: "hostaliases-pod", files: []string{"service/networking/hostaliases-pod.yaml"},
			contains: []string{"{IP}\thostaliases-pod\n", "# Entries added by HostAliases.\n127.0.0.1\tfoo.local\tbar.local\n10.1.2.3\tfoo.remote\tbar.remote\n"}},
		{name: "dnsConfig", pod: "dns-example", files: []string{"service/networking/custom-dns.yaml"},
			command: sleep, exec: []string{"cat", "/etc/resolv.conf"},
			want: "nameserver 192.0.2.1\nsearch ns1.svc.cluster-domain.example my.dns.search.suffix\noptions ndots:2 edns0\n"},
		{name: "securityContext runAsUser and fsGroup", pod: "security-context-demo", files: []string{"pods/security/security-context.yaml"},
			command: sleep, exec: []string{"sh", "-c", "id -u; touch /data/demo/f; stat -c %g /data/demo/f; grep NoNewPrivs /proc/self/status | tr -d '\\t'"},
			want: "1000\n2000\nNoNewPrivs:1\n"},
		{name: "container runAsUser overrides the pod's", pod: "security-context-demo-2", files: []string{"pods/security/security-context-2.yaml"},
			command: sleep, exec: []string{"id", "-u"}, want: "2000\n"},
		{name: "capabilities add", pod: "security-context-demo-4", files: []string{"pods/security/security-context-4.yaml"},
			command: sleep, exec: []string{"sh", "-c", "grep CapEff /proc/self/status | tr -d '\\t'"},
			want: "CapEff:00000000aa0435fb\n"},
		{name: "seccomp RuntimeDefault", pod: "default-pod", files: []string{"pods/security/seccomp/ga/default-pod.yaml"},
			command: sleep, exec: []string{"sh", "-c", "grep -E '^Seccomp:' /proc/self/status | tr -d '\\t'"},
			want: "Seccomp:2\n"},
		{name: "shareProcessNamespace", pod: "nginx", files: []string{"pods/share-process-namespace.yaml"},
			command: sleep, exec: []string{"sh", "-c", "ps -o comm | grep -c sleep"}, want: "2\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt, e := newRuntime(t)
			pod := loadExample(t, e.stateDir, tc.pod, tc.files, tc.extra)
			if tc.command != nil {
				for i := range pod.Spec.Containers {
					pod.Spec.Containers[i].Command, pod.Spec.Containers[i].Args = tc.command, nil
				}
			}
			upChecked(t, rt, e, pod)
			first := pod.Spec.Containers[0].Name
			var out string
			if tc.exec != nil {
				res, err := rt.ExecSync(ctx(t), pod.ID, first, tc.exec, 30*time.Second)
				if err != nil || res.ExitCode != 0 && tc.want != "" {
					t.Fatalf("ExecSync(%q) = %+v, %v", tc.exec, res, err)
				}
				out = string(res.Stdout)
			} else {
				var code int
				out, code = waitOutput(t, rt, pod, first)
				if code != 0 {
					t.Fatalf("container %s exited %d: %s", first, code, out)
				}
			}
			ip := runtimetestList(t, rt).IP
			if tc.want != "" {
				if want := strings.ReplaceAll(tc.want, "{IP}", ip); out != want {
					t.Errorf("output %q, want %q", out, want)
				}
			}
			for _, c := range tc.contains {
				if c = strings.ReplaceAll(c, "{IP}", ip); !strings.Contains(out, c) {
					t.Errorf("output %q lacks %q", out, c)
				}
			}
		})
	}
}

// runtimetestList returns the only pod of rt.
func runtimetestList(t *testing.T, rt *containerd.Runtime) reconcile.ObservedPod {
	t.Helper()
	pods, err := rt.List(ctx(t))
	if err != nil || len(pods) != 1 {
		t.Fatalf("List = %+v, %v; want one pod", pods, err)
	}
	return pods[0]
}

// printEnv is a command printing the named variables, one per line
// (busybox-static has no printenv).
func printEnv(names ...string) []string {
	var b strings.Builder
	for _, n := range names {
		b.WriteString(`echo "$` + n + `";`)
	}
	return []string{"sh", "-c", b.String()}
}

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const chattyPod = `apiVersion: v1
kind: Pod
metadata:
  name: chatty
spec:
  terminationGracePeriodSeconds: 1
  restartPolicy: Never
  containers:
    - name: talker
      image: ` + testImage + `
      command: ["sh", "-c", "echo first; echo oops >&2; for i in 1 2 3 4 5; do sleep 0.3; echo tick $i; done"]
    - name: shell
      image: ` + testImage + `
      command: ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
`

func TestLogsFollowTailAndExec(t *testing.T) {
	h := newHost(t)
	h.write("chatty.yaml", chattyPod)
	h.commit("chatty")
	h.mustBerth("apply", "--repo", h.repo)

	// -f follows the running container to its end.
	// stdout and stderr are separate pipes: their relative order is not
	// kept (nor is it on a kubelet), each stream's order is.
	out := h.mustBerth("logs", "chatty", "-c", "talker", "-f")
	if first, rest, _ := strings.Cut(out, "tick 1\n"); (first != "first\noops\n" && first != "oops\nfirst\n") || rest != "tick 2\ntick 3\ntick 4\ntick 5\n" {
		t.Errorf("logs -f = %q, want first and oops, then tick 1 to 5", out)
	}
	if out := h.mustBerth("logs", "default/chatty", "-c", "talker", "--tail", "2"); out != "tick 4\ntick 5\n" {
		t.Errorf("logs --tail 2 = %q", out)
	}
	if out := h.mustBerth("logs", "chatty", "-c", "talker", "--since", "1h"); !strings.Contains(out, "first\n") || !strings.HasSuffix(out, "tick 5\n") {
		t.Errorf("logs --since 1h = %q", out)
	}
	if code, _, errOut := h.berth("logs", "chatty"); code == 0 || !strings.Contains(errOut, "choose one with -c") {
		t.Errorf("logs of a two-container pod without -c: exit %d, %q", code, errOut)
	}
	if code, _, errOut := h.berth("logs", "chatty", "-c", "talker", "--previous"); code == 0 || !strings.Contains(errOut, "no previous instance") {
		t.Errorf("logs --previous without one: exit %d, %q", code, errOut)
	}

	// exec passes the exit code and output through.
	code, stdout, _ := h.berth("exec", "chatty", "-c", "shell", "--", "sh", "-c", "echo in $(hostname); exit 3")
	if code != 3 || stdout != "in chatty\n" {
		t.Errorf("exec: exit %d, %q; want 3, %q", code, stdout, "in chatty\n")
	}

	// exec -i passes our input and its end.
	{
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		saved := os.Stdin
		os.Stdin = r
		go func() { w.WriteString("piped line\n"); w.Close() }()
		code, stdout, errOut := h.berth("exec", "-i", "chatty", "-c", "shell", "--", "sh", "-c", "cat; echo done")
		os.Stdin = saved
		if code != 0 || stdout != "piped line\ndone\n" {
			t.Errorf("exec -i: exit %d, %q, %q", code, stdout, errOut)
		}
	}

	// exec -it gives the command a terminal and our input.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stdin
	os.Stdin = r
	defer func() { os.Stdin = saved }()
	go func() {
		w.WriteString("tty; echo shell-$((6*7))\n")
		time.Sleep(500 * time.Millisecond)
		w.WriteString("exit 4\n")
		w.Close()
	}()
	code, stdout, errOut := h.berth("exec", "-it", "chatty", "-c", "shell", "--", "sh")
	if code != 4 || !strings.Contains(stdout, "/dev/pts/") || !strings.Contains(stdout, "shell-42") {
		t.Errorf("exec -it: exit %d, stdout %q, stderr %q; want 4 with a terminal and the shell's answer", code, stdout, errOut)
	}
}

func TestDebugReachesPodLocalhost(t *testing.T) {
	h := newHost(t)
	h.write("web.yaml", twoContainerPod)
	h.commit("web")
	h.mustBerth("apply", "--repo", h.repo)
	script := "for i in $(seq 50); do wget -qO- http://127.0.0.1:8080/ && break; sleep 0.1; done; hostname"
	code, stdout, errOut := h.berth("debug", "web", "--image", testImage, "--", "sh", "-c", script)
	if code != 0 || !strings.Contains(stdout, "hello from web") || !strings.HasSuffix(stdout, "web\n") {
		t.Errorf("debug: exit %d, stdout %q, stderr %q; want the pod's page and hostname", code, stdout, errOut)
	}
	// The debug container is gone once it exits.
	if p := h.pods()["web"]; len(p.Containers) != 2 {
		t.Errorf("pod after debug: %+v", p.Containers)
	}
	code, stdout, _ = h.berth("debug", "web", "--image", testImage, "--target", "web", "--", "sh", "-c", "ps -o comm | grep -c httpd; exit 7")
	if code != 7 || strings.TrimSpace(stdout) != "1" {
		t.Errorf("debug --target web: exit %d, %q; want 7 and httpd among the processes", code, stdout)
	}
}

// TestLogsPreviousAcrossReplace: a pod berth replaces (same name, new
// spec) keeps its container's last log, which logs --previous shows, as
// after a restart of the container.
func TestLogsPreviousAcrossReplace(t *testing.T) {
	h := newHost(t)
	pod := func(value string) string {
		return `apiVersion: v1
kind: Pod
metadata: {name: echoer}
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: app
      image: ` + testImage + `
      command: ["sh", "-c", "echo instance ` + value + `; trap 'exit 0' TERM; sleep 3600 & wait"]
`
	}
	logged := func(want string, args ...string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, out, errOut := h.berth(append([]string{"logs", "echoer"}, args...)...)
			if code == 0 && out == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("logs %v = %q (exit %d, %s), want %q", args, out, code, errOut, want)
			}
			time.Sleep(50 * time.Millisecond) // the shell writes its line as it starts
		}
	}
	h.write("echoer.yaml", pod("1"))
	h.commit("v1")
	h.mustBerth("apply", "--repo", h.repo)
	logged("instance 1\n")

	h.write("echoer.yaml", pod("2"))
	h.commit("v2")
	if out := h.mustBerth("apply", "--repo", h.repo); !strings.Contains(out, "replace") {
		t.Fatalf("apply of v2 did not replace the pod:\n%s", out)
	}
	logged("instance 2\n")
	logged("instance 1\n", "--previous")
	if ents, _ := os.ReadDir(filepath.Join(h.state, "kept-logs")); len(ents) != 0 {
		t.Errorf("kept logs left after the pod was made again: %v", ents)
	}
}

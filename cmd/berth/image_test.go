package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth.dev/berth/internal/testenv"
)

func TestImageImportThenRunAirGapped(t *testing.T) {
	h := newHost(t)
	const ref = "example.local/airgapped:1"
	b, err := testenv.DockerArchive(ref)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "image.tar")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if out := h.mustBerth("image", "import", file); out != "imported "+ref+"\n" {
		t.Errorf("image import printed %q", out)
	}
	h.write("pod.yaml", strings.ReplaceAll(sleeper("airgapped", "3600"), testImage, ref)+"      imagePullPolicy: Never\n")
	h.commit("airgapped")
	h.mustBerth("apply", "--repo", h.repo)
	if p := h.pods()["airgapped"]; len(p.Containers) != 1 || p.Containers[0].State != "running" {
		t.Errorf("pod from the imported image: %+v", p)
	}
	if code, _, errOut := h.berth("image", "import", filepath.Join(t.TempDir(), "missing.tar")); code == 0 || !strings.Contains(errOut, "missing.tar") {
		t.Errorf("import of a missing file: exit %d, %q", code, errOut)
	}
}

package testenv

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const busyboxPath = "/bin/busybox"

// Snapshotter is the snapshotter images are unpacked into.
const Snapshotter = "overlayfs"

var archives struct {
	sync.Mutex
	m map[string][]byte
}

// BusyboxArchive returns an OCI image layout archive (a tar, as
// `ctr images import` and client.Import read it) of a one-layer image
// named ref. The layer holds /bin/busybox from the host with a symlink in
// /bin for every applet (sh, sleep, httpd, wget, nc, hostname, readlink, …)
// and empty /etc, /tmp, /root, /var. The image's Env is PATH=/bin and its
// Cmd is ["sh"]. Archives are cached per ref for the life of the process.
func BusyboxArchive(ref string) ([]byte, error) {
	return BusyboxArchiveConfig(ref, ocispec.ImageConfig{})
}

// BusyboxArchiveConfig is BusyboxArchive with more image configuration
// (User, StopSignal, WorkingDir, …) on top of Env and Cmd.
func BusyboxArchiveConfig(ref string, extra ocispec.ImageConfig) ([]byte, error) {
	archives.Lock()
	defer archives.Unlock()
	key, _ := json.Marshal(extra)
	if b, ok := archives.m[ref+"\x00"+string(key)]; ok {
		return b, nil
	}
	b, err := buildBusyboxArchive(ref, extra)
	if err != nil {
		return nil, err
	}
	if archives.m == nil {
		archives.m = map[string][]byte{}
	}
	archives.m[ref+"\x00"+string(key)] = b
	return b, nil
}

func buildBusyboxArchive(ref string, extra ocispec.ImageConfig) ([]byte, error) {
	bin, err := os.ReadFile(busyboxPath)
	if err != nil {
		return nil, fmt.Errorf("read busybox (apt-get install busybox-static): %w", err)
	}
	out, err := exec.Command(busyboxPath, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox --list: %w", err)
	}
	applets := strings.Fields(string(out))
	sort.Strings(applets)

	epoch := time.Unix(0, 0)
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	dirs := []struct {
		name string
		mode int64
	}{{"bin/", 0o755}, {"etc/", 0o755}, {"root/", 0o700}, {"tmp/", 0o1777}, {"var/", 0o755}}
	for _, d := range dirs {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d.name, Mode: d.mode, ModTime: epoch}); err != nil {
			return nil, err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bin)), ModTime: epoch}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	for _, a := range applets {
		if a == "busybox" || strings.Contains(a, "/") {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777, ModTime: epoch}); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}

	blobs := map[digest.Digest][]byte{}
	put := func(b []byte) digest.Digest {
		d := digest.FromBytes(b)
		blobs[d] = b
		return d
	}
	layerDigest := put(layer.Bytes())
	config, err := json.Marshal(ocispec.Image{
		Platform: ocispec.Platform{Architecture: runtime.GOARCH, OS: "linux"},
		Config:   withBase(extra),
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{layerDigest}},
	})
	if err != nil {
		return nil, err
	}
	configDigest := put(config)
	manifest, err := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: configDigest, Size: int64(len(config))},
		Layers:    []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayer, Digest: layerDigest, Size: int64(layer.Len())}},
	})
	if err != nil {
		return nil, err
	}
	manifestDigest := put(manifest)
	index, err := json.Marshal(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{{
			MediaType: ocispec.MediaTypeImageManifest,
			Digest:    manifestDigest,
			Size:      int64(len(manifest)),
			Annotations: map[string]string{
				"io.containerd.image.name": ref,
				ocispec.AnnotationRefName:  ref,
			},
		}},
	})
	if err != nil {
		return nil, err
	}

	var archive bytes.Buffer
	aw := tar.NewWriter(&archive)
	file := func(name string, b []byte) error {
		if err := aw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: epoch}); err != nil {
			return err
		}
		_, err := aw.Write(b)
		return err
	}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := aw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: epoch}); err != nil {
			return nil, err
		}
	}
	if err := file(ocispec.ImageLayoutFile, []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return nil, err
	}
	if err := file("index.json", index); err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(blobs))
	for d := range blobs {
		keys = append(keys, string(d))
	}
	sort.Strings(keys)
	for _, k := range keys {
		d := digest.Digest(k)
		if err := file("blobs/sha256/"+d.Encoded(), blobs[d]); err != nil {
			return nil, err
		}
	}
	if err := aw.Close(); err != nil {
		return nil, err
	}
	return archive.Bytes(), nil
}

// ImportArchive imports an OCI archive into namespace ns of the daemon at
// address and unpacks its images into the overlayfs snapshotter.
func ImportArchive(ctx context.Context, address, ns string, archive []byte) error {
	cl, err := client.New(address, client.WithDefaultNamespace(ns))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx = namespaces.WithNamespace(ctx, ns)
	imgs, err := cl.Import(ctx, bytes.NewReader(archive))
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	for _, img := range imgs {
		if err := client.NewImage(cl, img).Unpack(ctx, Snapshotter); err != nil {
			return fmt.Errorf("unpack %s: %w", img.Name, err)
		}
	}
	return nil
}

// BusyboxImage builds (once per process) the busybox image named ref and
// imports it into namespace ns of c. It fails the test on error.
func BusyboxImage(tb testing.TB, c *Containerd, ns, ref string) {
	tb.Helper()
	b, err := BusyboxArchive(ref)
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := ImportArchive(ctx, c.Address(), ns, b); err != nil {
		tb.Fatalf("testenv: import %s into %s: %v", ref, ns, err)
	}
}

// DockerArchive returns the busybox image named ref as a `docker save`
// archive (manifest.json, the config and layer.tar files), the other
// archive format `berth image import` reads.
func DockerArchive(ref string) ([]byte, error) {
	oci, err := BusyboxArchive(ref)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(oci))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				return nil, err
			}
			files[h.Name] = b
		}
	}
	var idx ocispec.Index
	if err := json.Unmarshal(files["index.json"], &idx); err != nil || len(idx.Manifests) != 1 {
		return nil, fmt.Errorf("busybox archive index: %v", err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(files["blobs/sha256/"+idx.Manifests[0].Digest.Encoded()], &m); err != nil {
		return nil, err
	}
	out := map[string][]byte{m.Config.Digest.Encoded() + ".json": files["blobs/sha256/"+m.Config.Digest.Encoded()]}
	var layers []string
	for _, l := range m.Layers {
		name := l.Digest.Encoded() + "/layer.tar"
		out[name] = files["blobs/sha256/"+l.Digest.Encoded()]
		layers = append(layers, name)
	}
	manifest, err := json.Marshal([]map[string]any{{"Config": m.Config.Digest.Encoded() + ".json", "RepoTags": []string{ref}, "Layers": layers}})
	if err != nil {
		return nil, err
	}
	out["manifest.json"] = manifest
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(out))
	for n := range out {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: int64(len(out[n])), ModTime: time.Unix(0, 0)}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(out[n]); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func withBase(c ocispec.ImageConfig) ocispec.ImageConfig {
	c.Env = append([]string{"PATH=/bin"}, c.Env...)
	if c.Cmd == nil {
		c.Cmd = []string{"sh"}
	}
	return c
}

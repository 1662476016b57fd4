package containerd

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	gocni "github.com/containerd/go-cni"

	"berth.dev/berth/reconcile"
)

// DefaultConfList returns berth's own CNI network: a bridge with host-local
// IPAM, acting as the gateway and letting pods reach themselves through a
// port mapping (hairpin), followed by the portmap plugin for hostPort.
// Outbound traffic is masqueraded by one rule set for the whole subnet
// (ensureMasquerade), not by the plugin per pod. go-cni adds the loopback network on its
// own. host-local keeps its allocations in the network's own store,
// /var/lib/cni/networks/<name>, so every berth instance on the network
// (the demo next to an installation) allocates from the same record.
func DefaultConfList(name, bridge, subnet string) ([]byte, error) {
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       name,
		"plugins": []any{
			map[string]any{
				"type":        "bridge",
				"bridge":      bridge,
				"isGateway":   true,
				"ipMasq":      false, // one rule set for the subnet: ensureMasquerade
				"hairpinMode": true,
				"ipam": map[string]any{
					"type":   "host-local",
					"ranges": [][]map[string]string{{{"subnet": subnet}}},
					"routes": []map[string]string{{"dst": "0.0.0.0/0"}},
				},
			},
			map[string]any{
				"type":         "portmap",
				"capabilities": map[string]bool{"portMappings": true},
				"snat":         true,
			},
		},
	}
	return json.MarshalIndent(conf, "", "  ")
}

func newCNI(stateDir string, opts Options) (gocni.CNI, error) {
	cniOpts := []gocni.Opt{
		gocni.WithPluginDir(opts.CNIBinDirs),
		gocni.WithMinNetworkCount(2),
		gocni.WithInterfacePrefix("eth"),
	}
	load := []gocni.Opt{gocni.WithLoNetwork}
	if opts.CNIConfDir != "" {
		cniOpts = append(cniOpts, gocni.WithPluginConfDir(opts.CNIConfDir), gocni.WithPluginMaxConfNum(1))
		load = append(load, gocni.WithDefaultConf)
	} else {
		b, err := DefaultConfList(opts.NetworkName, opts.Bridge, opts.Subnet)
		if err != nil {
			return nil, err
		}
		if err := migrateIPAM(filepath.Join(stateDir, "cni", "networks", opts.NetworkName), filepath.Join(IPAMDir, opts.NetworkName)); err != nil {
			return nil, fmt.Errorf("move ip allocations: %w", err)
		}
		path := filepath.Join(stateDir, "cni", "net.d", "10-"+opts.NetworkName+".conflist")
		// Written only when it changed: every command opens the runtime,
		// and `berth status` must work on a full disk.
		if old, err := os.ReadFile(path); err != nil || !bytes.Equal(old, b) {
			if err := writeFileAtomic(path, b, 0o600); err != nil {
				return nil, fmt.Errorf("write cni config: %w", err)
			}
		}
		load = append(load, gocni.WithConfListFile(path))
	}
	c, err := gocni.New(cniOpts...)
	if err != nil {
		return nil, fmt.Errorf("cni: %w", err)
	}
	if err := c.Load(load...); err != nil {
		return nil, fmt.Errorf("load cni config: %w", err)
	}
	return c, nil
}

// IPAMDir is where host-local keeps each network's allocations.
const IPAMDir = "/var/lib/cni/networks"

// migrateIPAM moves the allocations an older berth kept in its state
// directory into the network's own store, so addresses of running pods
// are never handed out twice.
func migrateIPAM(old, store string) error {
	ents, err := os.ReadDir(old)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := os.MkdirAll(store, 0o755); err != nil {
		return err
	}
	for _, e := range ents {
		if n := e.Name(); n == "lock" || strings.HasPrefix(n, "last_reserved_ip") {
			continue
		}
		dst := filepath.Join(store, e.Name())
		if _, err := os.Lstat(dst); err == nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(old, e.Name()))
		if err != nil {
			return err
		}
		if err := writeFileAtomic(dst, b, 0o644); err != nil {
			return err
		}
	}
	return os.RemoveAll(old)
}

// cniID returns the CNI container ID of the pod's sandbox record.
func cniID(id reconcile.PodID, labels map[string]string) string {
	if v := labels[LabelCNIID]; v != "" {
		return v
	}
	return SandboxID(id)
}

// newCNIID makes the CNI container ID of a new sandbox.
func newCNIID(ns string, id reconcile.PodID) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return shortID(ns+"_"+SandboxID(id)) + "-" + hex.EncodeToString(b)
}

func cniOpts(id reconcile.PodID, cid string, ports []gocni.PortMapping) []gocni.NamespaceOpts {
	opts := []gocni.NamespaceOpts{gocni.WithLabels(map[string]string{
		"IgnoreUnknown":              "1",
		"K8S_POD_NAMESPACE":          id.Namespace,
		"K8S_POD_NAME":               id.Name,
		"K8S_POD_INFRA_CONTAINER_ID": cid,
	})}
	if len(ports) > 0 {
		opts = append(opts, gocni.WithCapabilityPortMap(ports))
	}
	return opts
}

// cniAdd attaches the pinned netns at path to the networks as CNI
// container cid, mapping the given host ports, and returns the pod's IPv4 (or first) address.
func (r *Runtime) cniAdd(ctx context.Context, id reconcile.PodID, cid, path string, ports []gocni.PortMapping) (string, error) {
	if r.ownNetwork != "" {
		if err := r.masquerade(); err != nil {
			return "", fmt.Errorf("cni add: %w", err)
		}
	}
	res, err := r.cni.Setup(ctx, cid, path, cniOpts(id, cid, ports)...)
	if err != nil {
		return "", fmt.Errorf("cni add: %w", err)
	}
	var first string
	for name, iface := range res.Interfaces {
		if name == "lo" {
			continue
		}
		for _, ipc := range iface.IPConfigs {
			if ipc.IP == nil {
				continue
			}
			if ipc.IP.To4() != nil {
				return ipc.IP.String(), nil
			}
			if first == "" {
				first = ipc.IP.String()
			}
		}
	}
	if first == "" {
		return "", fmt.Errorf("cni add: no IP address in result")
	}
	return first, nil
}

// cniDel detaches the pod from the networks and releases its address. It
// works when the namespace at path is already gone: the plugins release
// the IPAM allocation first and treat a missing namespace as done. ports
// are the pod's host port mappings: portmap removes its rules only when
// told them.
func (r *Runtime) cniDel(ctx context.Context, id reconcile.PodID, cid, path string, ports []gocni.PortMapping) error {
	pinned := isPinned(path)
	if _, err := os.Stat(path); err == nil && !pinned {
		// A mount point left by an interrupted pin; plugins would refuse it.
		_ = os.Remove(path)
	}
	if err := r.cni.Remove(ctx, cid, path, cniOpts(id, cid, ports)...); err != nil {
		return fmt.Errorf("cni del: %w", err)
	}
	// The plugin's own masquerade chain of a pod an older berth made (with
	// ipMasq on), which the plugin no longer removes; or, with the
	// namespace gone, never did.
	if r.ownNetwork != "" && r.legacyMasq(cid) {
		if err := teardownIPMasq(r.ownNetwork, cid); err != nil {
			return fmt.Errorf("cni del: %w", err)
		}
	}
	return nil
}

// writeFileAtomic replaces path so readers never see a torn file. Unlike
// record.WriteFileAtomic it does not sync the directory: it writes the
// per-pod files (hosts, resolv.conf, projected volume files, often on
// tmpfs) on every pod start, and they are rebuilt from the revision after
// a power loss, so they need atomicity, not durability.
func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

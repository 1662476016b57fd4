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
	"sort"
	"strings"

	gocni "github.com/containerd/go-cni"
	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	cnitypes "github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"berth.dev/berth/internal/record"
	"berth.dev/berth/reconcile"
)

// ownConfList returns berth's own CNI network: a bridge with host-local
// IPAM, acting as the gateway and letting pods reach themselves through a
// port mapping (hairpin), followed (with portmap) by the portmap plugin
// for hostPort.
// Outbound traffic is masqueraded by one rule set for the whole subnet
// (ensureMasquerade), not by the plugin per pod. host-local keeps its
// allocations in the network's own store, /var/lib/cni/networks/<name>,
// so every berth instance on the network (the demo next to an
// installation) allocates from the same record.
func ownConfList(name, bridge, subnet string, portmap bool) ([]byte, error) {
	plugins := []any{
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
	}
	if portmap {
		plugins = append(plugins, map[string]any{
			"type":         "portmap",
			"capabilities": map[string]bool{"portMappings": true},
			"snat":         true,
		})
	}
	conf := map[string]any{"cniVersion": "1.0.0", "name": name, "plugins": plugins}
	return json.MarshalIndent(conf, "", "  ")
}

// cniNetwork is the one CNI network a pod is attached to.
//
// berth brings the pod's loopback interface up itself (loopbackUp)
// instead of running the loopback plugin, and attaches a pod that maps
// no host port to its own network without the portmap plugin, which does
// nothing for such a pod but costs a process at each ADD and DEL.
type cniNetwork struct {
	cni *libcni.CNIConfig
	// ports is the whole chain; bare is the chain for pods without host
	// ports: without portmap on berth's own network, the same otherwise.
	ports, bare *libcni.NetworkConfigList
	// ifName is the pod's interface: eth1 on berth's own network and eth0
	// on the user's, the names berth has always given (a DEL must name
	// the interface its ADD did).
	ifName string
}

func newCNI(stateDir string, opts Options) (*cniNetwork, error) {
	n := &cniNetwork{cni: libcni.NewCNIConfig(opts.CNIBinDirs, &invoke.DefaultExec{
		RawExec:       &invoke.RawExec{Stderr: os.Stderr},
		PluginDecoder: version.PluginDecoder{},
	})}
	if opts.CNIConfDir != "" {
		list, err := loadConfDir(opts.CNIConfDir)
		if err != nil {
			return nil, fmt.Errorf("load cni config: %w", err)
		}
		n.ports, n.bare, n.ifName = list, list, "eth0"
		return n, nil
	}
	b, err := ownConfList(opts.NetworkName, opts.Bridge, opts.Subnet, true)
	if err != nil {
		return nil, err
	}
	if err := migrateIPAM(filepath.Join(stateDir, "cni", "networks", opts.NetworkName), filepath.Join(IPAMDir, opts.NetworkName)); err != nil {
		return nil, fmt.Errorf("move ip allocations: %w", err)
	}
	// The configuration is written where a user can read it and run
	// the plugins by hand. Only when it changed: every command opens the
	// runtime, and `berth status` must work on a full disk.
	path := filepath.Join(stateDir, "cni", "net.d", "10-"+opts.NetworkName+".conflist")
	if old, err := os.ReadFile(path); err != nil || !bytes.Equal(old, b) {
		if err := record.ReplaceFile(path, b, 0o600); err != nil {
			return nil, fmt.Errorf("write cni config: %w", err)
		}
	}
	bare, err := ownConfList(opts.NetworkName, opts.Bridge, opts.Subnet, false)
	if err != nil {
		return nil, err
	}
	if n.ports, err = libcni.ConfListFromBytes(b); err != nil {
		return nil, fmt.Errorf("load cni config: %w", err)
	}
	if n.bare, err = libcni.ConfListFromBytes(bare); err != nil {
		return nil, fmt.Errorf("load cni config: %w", err)
	}
	n.ifName = "eth1"
	return n, nil
}

// loadConfDir loads the first network configuration in dir, in the
// order of the file names, as a list (a single .conf or .json becomes a
// list of one).
func loadConfDir(dir string) (*libcni.NetworkConfigList, error) {
	files, err := libcni.ConfFiles(dir, []string{".conf", ".conflist", ".json"})
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no network configuration in %s", dir)
	}
	sort.Strings(files)
	file := files[0]
	var list *libcni.NetworkConfigList
	if strings.HasSuffix(file, ".conflist") {
		if list, err = libcni.ConfListFromFile(file); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
	} else {
		conf, err := libcni.ConfFromFile(file)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if conf.Network.Type == "" {
			return nil, fmt.Errorf("%s: the network has no plugin type", file)
		}
		if list, err = libcni.ConfListFromConf(conf); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
	}
	if len(list.Plugins) == 0 {
		return nil, fmt.Errorf("%s: the network list has no plugins", file)
	}
	return list, nil
}

// runtimeConf is what ADD and DEL tell the plugins about the pod, and
// which chain they run.
func (n *cniNetwork) runtimeConf(id reconcile.PodID, cid, path string, ports []gocni.PortMapping) (*libcni.NetworkConfigList, *libcni.RuntimeConf) {
	rt := &libcni.RuntimeConf{
		ContainerID: cid,
		NetNS:       path,
		IfName:      n.ifName,
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", id.Namespace},
			{"K8S_POD_NAME", id.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", cid},
		},
	}
	if len(ports) == 0 {
		return n.bare, rt
	}
	rt.CapabilityArgs = map[string]any{"portMappings": ports}
	return n.ports, rt
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
		if err := record.WriteFileAtomic(dst, b, 0o644); err != nil {
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

// cniAdd attaches the pinned netns at path to the networks as CNI
// container cid, mapping the given host ports, and returns the pod's IPv4 (or first) address.
func (r *Runtime) cniAdd(ctx context.Context, id reconcile.PodID, cid, path string, ports []gocni.PortMapping) (string, error) {
	if r.ownNetwork != "" {
		if err := r.masquerade(); err != nil {
			return "", fmt.Errorf("cni add: %w", err)
		}
	}
	if err := loopbackUp(path); err != nil {
		return "", fmt.Errorf("cni add: %w", err)
	}
	list, rt := r.cni.runtimeConf(id, cid, path, ports)
	res, err := r.cni.cni.AddNetworkList(ctx, list, rt)
	if err != nil {
		return "", fmt.Errorf("cni add: %w", err)
	}
	ip, err := podIP(res)
	if err != nil {
		return "", fmt.Errorf("cni add: %w", err)
	}
	return ip, nil
}

// podIP returns the first IPv4 address a CNI result gives the pod's side,
// or its first address if it has no IPv4 one.
func podIP(res cnitypes.Result) (string, error) {
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return "", err
	}
	var first string
	for _, ipc := range r.IPs {
		if i := ipc.Interface; i != nil && *i >= 0 && *i < len(r.Interfaces) && r.Interfaces[*i].Sandbox == "" {
			continue // an address on the host's side
		}
		if ipc.Address.IP.To4() != nil {
			return ipc.Address.IP.String(), nil
		}
		if first == "" {
			first = ipc.Address.IP.String()
		}
	}
	if first == "" {
		return "", fmt.Errorf("no IP address in result")
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
	list, rt := r.cni.runtimeConf(id, cid, path, ports)
	if err := r.cni.cni.DelNetworkList(ctx, list, rt); err != nil {
		// As containerd's CRI: a plugin may say what it was to remove
		// is gone, and without a namespace one may not find it.
		if msg := err.Error(); !strings.Contains(msg, "not found") && (path != "" || !strings.Contains(msg, "no such file or directory")) {
			return fmt.Errorf("cni del: %w", err)
		}
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

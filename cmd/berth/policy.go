package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"

	"berth.dev/berth/reconcile"
)

// policyFlags are the node policy settings: what this host allows pods
// beyond an unprivileged container. Flags and the policy file add up.
type policyFlags struct {
	pol reconcile.NodePolicy
}

func (p *policyFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&p.pol.Privileged, "allow-privileged", false, "node policy: allow privileged containers")
	fs.BoolVar(&p.pol.HostNamespaces, "allow-host-namespaces", false, "node policy: allow hostNetwork, hostPID and hostIPC")
	fs.BoolVar(&p.pol.HostPorts, "allow-host-ports", false, "node policy: allow hostPort")
	fs.Var(listFlag{&p.pol.Capabilities}, "allow-capability", "node policy: a capability containers may add beyond the default set, e.g. NET_ADMIN, or ALL (repeatable; the variable takes a comma-separated list)")
	fs.Var(listFlag{&p.pol.HostPaths}, "allow-host-path", "node policy: a host directory hostPath volumes may use (repeatable; the variable takes a comma-separated list)")
	fs.Var(policyFile{&p.pol}, "node-policy", "node policy file (YAML or JSON: privileged, hostNamespaces, hostPorts, capabilities, hostPaths), added to the flags")
}

func (p *policyFlags) value() reconcile.NodePolicy { return p.pol }

// listFlag is a repeatable flag; one value may hold a comma-separated
// list (as the BERTH_* variable does).
type listFlag struct{ list *[]string }

func (l listFlag) String() string {
	if l.list == nil {
		return ""
	}
	return strings.Join(*l.list, ",")
}

func (l listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l.list = append(*l.list, s)
		}
	}
	return nil
}

// policyFile reads a policy file when the flag is set and adds it to the
// policy.
type policyFile struct{ pol *reconcile.NodePolicy }

func (policyFile) String() string { return "" }

func (f policyFile) Set(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("node policy %s: %w", path, err)
	}
	j, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("node policy %s: %w", path, err)
	}
	var p reconcile.NodePolicy
	dec := json.NewDecoder(strings.NewReader(string(j)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return fmt.Errorf("node policy %s: %w", path, err)
	}
	f.pol.Privileged = f.pol.Privileged || p.Privileged
	f.pol.HostNamespaces = f.pol.HostNamespaces || p.HostNamespaces
	f.pol.HostPorts = f.pol.HostPorts || p.HostPorts
	f.pol.Capabilities = append(f.pol.Capabilities, p.Capabilities...)
	f.pol.HostPaths = append(f.pol.HostPaths, p.HostPaths...)
	return nil
}

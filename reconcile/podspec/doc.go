// Package podspec resolves the Kubernetes meaning of a pod's containers
// into plain values any runtime can use: the environment (envFrom, env in
// order, $(VAR) expansion, valueFrom of ConfigMaps, Secrets, the downward
// API and resources), command and args with $(VAR) expanded, and the files
// of configMap, secret, downwardAPI and projected volumes with their modes,
// the effective securityContext (the pod's merged with the container's)
// and runAsNonRoot's check, and the pod's hostname, /etc/hosts and
// /etc/resolv.conf (dnsPolicy, dnsConfig, hostAliases, subdomain).
// runtime/containerd maps the results to OCI options; the fake runtime the
// engine's tests use resolves containers through the same functions, so
// both give a container the same meaning.
//
// It does no I/O: what depends on the host (the pod's IP, the host's
// capacity, hostname, /etc/hosts and resolv.conf) comes in as input.
package podspec

package schema

import (
	"strings"

	"cuelang.org/go/cue"
)

// unsupportedFields explains, for fields berth knows but cannot honour on a
// single host, why they are rejected. The key is the field's parent name and
// its own name ("spec.schedulingGates", "volumes.image"), which identifies it
// wherever the pod spec is embedded (a Pod, a Deployment's template, a
// CronJob's job template).
var unsupportedFields = map[string]string{
	// Pod spec.
	"spec.schedulingGates":           "scheduling gates hold a pod back until a controller removes them, and berth has no such controller",
	"spec.schedulerName":             "berth places every pod of the revision on its own host; there is no other scheduler",
	"spec.priorityClassName":         "pod priority and preemption need a cluster scheduler",
	"spec.priority":                  "pod priority and preemption need a cluster scheduler",
	"spec.preemptionPolicy":          "pod priority and preemption need a cluster scheduler",
	"spec.resources":                 "pod-level resources are not supported; set resources on each container",
	"spec.topologySpreadConstraints": "topology spread has no meaning on a single host",
	"spec.readinessGates":            "readiness gates need a Kubernetes controller",
	"spec.runtimeClassName":          "berth runs every pod with the host's default runtime",
	"spec.overhead":                  "pod overhead belongs to a runtime class, which berth does not support",
	"spec.enableServiceLinks":        "a host has no Services to link",
	"spec.ephemeralContainers":       "ephemeral containers are added by kubectl debug against an API server",
	"spec.resourceClaims":            "dynamic resource allocation needs a Kubernetes control plane",
	"spec.hostUsers":                 "user namespaces are not supported",
	"spec.os":                        "the pod runs on this host's operating system",
	"spec.setHostnameAsFQDN":         "a host has no cluster domain",
	"spec.podFailurePolicy":          "pod failure policies are not supported; backoffLimit bounds retries",
	"spec.backoffLimitPerIndex":      "per-index backoff limits are not supported; backoffLimit bounds retries",
	"spec.maxFailedIndexes":          "per-index backoff limits are not supported; backoffLimit bounds retries",
	"spec.successPolicy":             "Job success policies are not supported; a Job succeeds when its completions succeed",
	"spec.podReplacementPolicy":      "pod replacement policies are not supported",
	"spec.managedBy":                 "berth manages every Job of the revision itself",
	"podAffinity.requiredDuringSchedulingIgnoredDuringExecution":     "required pod affinity groups pods across nodes, and berth runs on one host (preferred affinity is accepted and decides nothing)",
	"podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution": "required pod anti-affinity spreads pods across nodes, and berth runs on one host (preferred anti-affinity is accepted and decides nothing)",
	// Containers.
	"containers.resizePolicy":             "in-place resize is not supported: a change of resources replaces the pod",
	"initContainers.resizePolicy":         "in-place resize is not supported: a change of resources replaces the pod",
	"containers.restartPolicyRules":       "container restart rules are not supported; the pod's restartPolicy applies",
	"initContainers.restartPolicyRules":   "container restart rules are not supported; the pod's restartPolicy applies",
	"containers.volumeDevices":            "raw block devices need PersistentVolumes, which a host does not have",
	"initContainers.volumeDevices":        "raw block devices need PersistentVolumes, which a host does not have",
	"securityContext.appArmorProfile":     "AppArmor profiles are not supported",
	"securityContext.seLinuxOptions":      "SELinux options are not supported",
	"securityContext.windowsOptions":      "berth runs Linux containers only",
	"securityContext.seLinuxChangePolicy": "SELinux options are not supported",
	"resources.claims":                    "dynamic resource allocation needs a Kubernetes control plane",
	// Volumes.
	"volumes.persistentVolumeClaim": noClaimsReason,
	"volumes.ephemeral":             "ephemeral volumes need a volume provisioner; use emptyDir",
	"volumes.image":                 "image volumes are not supported; copy the files in an init container",
	"sources.serviceAccountToken":   "service account tokens need a Kubernetes API server",
	"sources.clusterTrustBundle":    "cluster trust bundles need a Kubernetes API server",
	"sources.podCertificate":        "pod certificates need a Kubernetes API server",
}

// restrictedValues explains, for fields berth accepts only with the value
// that asks for nothing it cannot do, why other values are refused. The
// key is built as for unsupportedFields.
var restrictedValues = map[string]string{
	"spec.automountServiceAccountToken":     "berth has no API server and mounts no service account token",
	"containers.terminationMessagePath":     "berth reads no termination message file",
	"initContainers.terminationMessagePath": "berth reads no termination message file",
}

// restrictedReason returns why only one value of the field at path is
// accepted, or "".
func restrictedReason(path []cue.Selector) string {
	var names []string
	for _, s := range path {
		if s.LabelType() == cue.StringLabel {
			names = append(names, s.Unquoted())
		}
	}
	if len(names) < 2 {
		return ""
	}
	return restrictedValues[names[len(names)-2]+"."+names[len(names)-1]]
}

// unsupportedReason returns why the field at path is not supported, or "".
// A volume source berth does not know gets a general reason.
func unsupportedReason(path []cue.Selector) string {
	var names []string
	for _, s := range path {
		if s.LabelType() == cue.StringLabel {
			names = append(names, s.Unquoted())
		}
	}
	if len(names) < 2 {
		return ""
	}
	parent, field := names[len(names)-2], names[len(names)-1]
	if why, ok := unsupportedFields[parent+"."+field]; ok {
		return why
	}
	if parent == "volumes" && len(path) >= 2 && path[len(path)-2].LabelType() == cue.IndexLabel {
		return "volume source " + field + " is not supported; berth supports " +
			strings.Join(volumeSources, ", ")
	}
	return ""
}

// noClaims says why a persistentVolumeClaim volume is refused outside a
// StatefulSet's own claims.
const noClaims = "field not supported by berth: " + noClaimsReason

const noClaimsReason = "a host has no PersistentVolumes; use a StatefulSet's volumeClaimTemplates (a directory per pod) or a hostPath volume"

// volumeSources are the volume sources berth supports.
var volumeSources = []string{"emptyDir", "hostPath", "configMap", "secret", "downwardAPI", "projected"}

// notRun names kinds berth recognises but does not run on a host, with
// what takes their place. They are skipped with a warning (an error with
// Options.Strict).
var notRun = map[string]string{
	"Service":                  "pods reach each other by pod address, or from outside by hostPort",
	"PersistentVolumeClaim":    "use a StatefulSet's volumeClaimTemplates or a hostPath volume",
	"PersistentVolume":         "use a hostPath volume",
	"StorageClass":             "a host has no volume provisioner",
	"PodDisruptionBudget":      "a single host has no voluntary disruptions to budget",
	"Ingress":                  "publish ports with hostPort and run a proxy as a pod",
	"IngressClass":             "publish ports with hostPort and run a proxy as a pod",
	"ServiceAccount":           "there is no API server to authenticate to",
	"Role":                     "there is no API server to authorise",
	"RoleBinding":              "there is no API server to authorise",
	"ClusterRole":              "there is no API server to authorise",
	"ClusterRoleBinding":       "there is no API server to authorise",
	"Namespace":                "namespaces exist as soon as an object names them",
	"NetworkPolicy":            "berth does not filter pod traffic",
	"HorizontalPodAutoscaler":  "berth runs the replicas the revision declares",
	"LimitRange":               "set resources on each container",
	"ResourceQuota":            "set resources on each container",
	"PriorityClass":            "pod priority needs a cluster scheduler",
	"Endpoints":                "a host has no Services",
	"EndpointSlice":            "a host has no Services",
	"CustomResourceDefinition": "there is no API server to extend",
	"Gateway":                  "publish ports with hostPort and run a proxy as a pod",
	"HTTPRoute":                "publish ports with hostPort and run a proxy as a pod",
}

// removedAPIs maps an apiVersion Kubernetes no longer serves, with its
// kind, to the one to use.
var removedAPIs = map[string]string{
	"extensions/v1beta1 Deployment":      "apps/v1",
	"extensions/v1beta1 DaemonSet":       "apps/v1",
	"extensions/v1beta1 ReplicaSet":      "apps/v1",
	"apps/v1beta1 Deployment":            "apps/v1",
	"apps/v1beta1 StatefulSet":           "apps/v1",
	"apps/v1beta2 Deployment":            "apps/v1",
	"apps/v1beta2 DaemonSet":             "apps/v1",
	"apps/v1beta2 ReplicaSet":            "apps/v1",
	"apps/v1beta2 StatefulSet":           "apps/v1",
	"batch/v1beta1 CronJob":              "batch/v1",
	"batch/v2alpha1 CronJob":             "batch/v1",
	"policy/v1beta1 PodDisruptionBudget": "policy/v1",
}

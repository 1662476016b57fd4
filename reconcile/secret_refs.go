package reconcile

// PodSpecOf returns the pod spec o runs: a Pod's spec, or the pod template
// of a workload (a CronJob's Job template); nil for kinds that run no pods.
func PodSpecOf(o *Object) *PodSpec { return podTemplate(o) }

// SecretRefs returns the Secrets s refers to (volumes, env, envFrom,
// imagePullSecrets) by name, each with whether the reference is optional.
func SecretRefs(s *PodSpec) map[string]bool {
	_, secrets := configRefs(s)
	return secrets
}

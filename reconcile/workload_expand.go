package reconcile

import (
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Labels and annotations berth puts on the pods of workloads, as
// Kubernetes' controllers do.
const (
	LabelPodTemplateHash       = "pod-template-hash"
	LabelControllerRevision    = "controller-revision-hash"
	LabelStatefulSetPodName    = "statefulset.kubernetes.io/pod-name"
	LabelPodIndex              = "apps.kubernetes.io/pod-index"
	LabelJobName               = "batch.kubernetes.io/job-name"
	LabelJobCompletionIndex    = "batch.kubernetes.io/job-completion-index"
	AnnotationJobCompletionIdx = "batch.kubernetes.io/job-completion-index"
	// EnvJobCompletionIndex is set in every container of an Indexed Job's pod.
	EnvJobCompletionIndex = "JOB_COMPLETION_INDEX"
)

// safeAlphabet is the alphabet Kubernetes uses for generated name
// suffixes: no vowels, no look-alike digits.
const safeAlphabet = "bcdfghjklmnpqrstvwxz2456789"

// safeHash encodes a digest of parts in safeAlphabet, n characters long.
func safeHash(n int, parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	out := make([]byte, n)
	for i := range out {
		out[i] = safeAlphabet[int(sum[i])%len(safeAlphabet)]
	}
	return string(out)
}

// templateHash is the hash of a workload's pod template with its
// configuration: ten characters of safeAlphabet, as in pod-template-hash.
func (e *expander) templateHash(o *Object, t PodTemplateSpec) (string, error) {
	p := DesiredPod{
		ID:          PodID{Namespace: NamespaceOr(o.Metadata.Namespace), Name: o.Metadata.Name},
		Labels:      copyMap(t.Metadata.Labels),
		Annotations: copyMap(t.Metadata.Annotations),
		Spec:        NormalizeSpec(t.Spec),
		NodeName:    e.opts.Node.Name,
	}
	if err := e.configs.resolve(&p); err != nil {
		return "", fmt.Errorf("%s: %w", o.Source, err)
	}
	return safeHash(10, HashPod(&p)), nil
}

func ReplicaCount(r *int32) int {
	if r == nil {
		return 1
	}
	return int(*r)
}

func withLabel(m map[string]string, k, v string) map[string]string {
	out := copyMap(m)
	if out == nil {
		out = map[string]string{}
	}
	out[k] = v
	return out
}

// replicas expands a Deployment (pods <name>-<template-hash>-<suffix>) or a
// ReplicaSet (pods <name>-<suffix>). The suffix of replica i depends only
// on the owner, the template hash and i, so scaling adds or removes the
// highest replicas and leaves the others alone.
func (e *expander) replicas(o *Object, t PodTemplateSpec, replicas *int32, deployment bool) error {
	if ok, _ := e.opts.Node.Matches(&t.Spec); !ok {
		return nil
	}
	th, err := e.templateHash(o, t)
	if err != nil {
		return err
	}
	meta := t.Metadata
	meta.Labels = withLabel(meta.Labels, LabelPodTemplateHash, th)
	for i := range ReplicaCount(replicas) {
		name := o.Metadata.Name + "-" + safeHash(5, o.Key(), th, strconv.Itoa(i))
		if deployment {
			name = o.Metadata.Name + "-" + th + "-" + safeHash(5, o.Key(), th, strconv.Itoa(i))
		}
		if _, err := e.pod(o, name, meta, t.Spec, nil); err != nil {
			return err
		}
	}
	return nil
}

// ClaimDir is the host directory that stands for the PersistentVolumeClaim
// <claim>-<set>-<ordinal> of a StatefulSet: StateDir/volumes/<namespace>/
// <claim>-<set>-<ordinal>. It survives the pod's replacement and the set's
// scale-down; removing it deletes the data.
func ClaimDir(stateDir, namespace, claim, set string, ordinal int) string {
	return filepath.Join(ClaimsRoot(stateDir), namespace, fmt.Sprintf("%s-%s-%d", claim, set, ordinal))
}

// statefulSet expands a StatefulSet into <name>-<ordinal> pods, each with
// its volume claims as host directories (ClaimDir), hostname = pod name and
// subdomain = serviceName.
func (e *expander) statefulSet(o *Object) error {
	s := o.StatefulSet
	if ok, _ := e.opts.Node.Matches(&s.Template.Spec); !ok {
		return nil
	}
	th, err := e.templateHash(o, s.Template)
	if err != nil {
		return err
	}
	start := 0
	if s.Ordinals != nil {
		start = int(s.Ordinals.Start)
	}
	ns := NamespaceOr(o.Metadata.Namespace)
	for ord := start; ord < start+ReplicaCount(s.Replicas); ord++ {
		name := fmt.Sprintf("%s-%d", o.Metadata.Name, ord)
		meta := s.Template.Metadata
		meta.Labels = withLabel(meta.Labels, LabelControllerRevision, o.Metadata.Name+"-"+th)
		meta.Labels[LabelStatefulSetPodName] = name
		meta.Labels[LabelPodIndex] = strconv.Itoa(ord)
		spec := s.Template.Spec
		if spec.Hostname == "" {
			spec.Hostname = name
		}
		if spec.Subdomain == "" {
			spec.Subdomain = s.ServiceName
		}
		spec.Volumes = append([]Volume(nil), spec.Volumes...)
		for _, cl := range s.VolumeClaimTemplates {
			v := Volume{Name: cl.Metadata.Name, HostPath: &HostPathVolumeSource{
				Path: ClaimDir(e.opts.StateDir, ns, cl.Metadata.Name, o.Metadata.Name, ord), Type: "DirectoryOrCreate",
			}}
			replaced := false
			for i := range spec.Volumes {
				if spec.Volumes[i].Name == v.Name {
					spec.Volumes[i], replaced = v, true
				}
			}
			if !replaced {
				spec.Volumes = append(spec.Volumes, v)
			}
		}
		if _, err := e.pod(o, name, meta, spec, nil); err != nil {
			return err
		}
	}
	return nil
}

// StatefulSetOrdinal returns the ordinal of a StatefulSet pod from its
// name, or -1.
func StatefulSetOrdinal(set, pod string) int {
	rest, ok := strings.CutPrefix(pod, set+"-")
	if !ok {
		return -1
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 || strconv.Itoa(n) != rest {
		return -1
	}
	return n
}

// daemonSet expands a DaemonSet into one pod, <name>-<suffix of the node>,
// when its template matches the node. The name stays the same across
// template changes, so an update replaces the pod in place.
func (e *expander) daemonSet(o *Object) error {
	d := o.DaemonSet
	if ok, _ := e.opts.Node.Matches(&d.Template.Spec); !ok {
		return nil
	}
	th, err := e.templateHash(o, d.Template)
	if err != nil {
		return err
	}
	meta := d.Template.Metadata
	meta.Labels = withLabel(meta.Labels, LabelControllerRevision, th)
	name := o.Metadata.Name + "-" + safeHash(5, o.Key(), e.opts.Node.Name)
	_, err = e.pod(o, name, meta, d.Template.Spec, nil)
	return err
}

// JobInfo is what the Job controller needs to know of an expanded Job.
type JobInfo struct {
	Key         string // record key, namespace/name
	Owner       string // Job/namespace/name
	Hash        string
	Spec        JobSpec
	Completions int
	Indexed     bool
	CronJob     string // the CronJob that made it, "" for a plain Job
	Record      *JobRecord
	// Active are the names of the pods the Job wants running now, by slot.
	Active map[string]int
}

// JobBackoff is the delay before a Job's next pod after n failures:
// 10 s doubling, at most 6 minutes, as in Kubernetes.
func JobBackoff(n int) time.Duration {
	if n <= 0 {
		return 0
	}
	d := 10 * time.Second
	for i := 1; i < n && d < 6*time.Minute; i++ {
		d *= 2
	}
	return min(d, 6*time.Minute)
}

func (e *expander) jobHash(o *Object, meta ObjectMeta, s JobSpec) (string, error) {
	th, err := e.templateHash(o, s.Template)
	if err != nil {
		return "", err
	}
	return safeHash(10, th, fmt.Sprint(ReplicaCount(s.Completions), s.CompletionMode)), nil
}

// job expands a Job: its finished pods as recorded (kept, never started
// again) and, while it is neither complete nor failed nor suspended, the
// pods of the completions still to do, up to parallelism, each after the
// backoff its failures call for. Pod names are <job>-<suffix>, or
// <job>-<index>-<suffix> for an Indexed Job; the suffix depends on the
// index (or slot) and the attempt, so a retry is a new pod.
func (e *expander) job(o *Object, meta ObjectMeta, s JobSpec, cron string) error {
	if ok, _ := e.opts.Node.Matches(&s.Template.Spec); !ok {
		return nil
	}
	hash, err := e.jobHash(o, meta, s)
	if err != nil {
		return err
	}
	key := NamespaceOr(o.Metadata.Namespace) + "/" + o.Metadata.Name
	rec := e.opts.Records.Jobs[key]
	if rec != nil && rec.Hash != hash && cron == "" {
		rec = nil // the spec changed: a new Job
	}
	info := &JobInfo{
		Key: key, Owner: o.Key(), Hash: hash, Spec: s, Completions: ReplicaCount(s.Completions),
		Indexed: s.CompletionMode == "Indexed", CronJob: cron, Record: rec, Active: map[string]int{},
	}
	e.x.Jobs[key] = info
	if rec == nil {
		rec = &JobRecord{}
	}
	if rec.Finished() && s.TTLSecondsAfterFinished != nil && !e.opts.Now.IsZero() {
		gone := rec.CompletionTime.Add(time.Duration(*s.TTLSecondsAfterFinished) * time.Second)
		if !e.opts.Now.Before(gone) {
			return nil
		}
		e.x.wakeAt(gone)
	}
	podMeta := func(slot int) ObjectMeta {
		m := s.Template.Metadata
		m.Labels = withLabel(m.Labels, LabelJobName, o.Metadata.Name)
		if info.Indexed {
			m.Labels[LabelJobCompletionIndex] = strconv.Itoa(slot)
			m.Annotations = withLabel(m.Annotations, AnnotationJobCompletionIdx, strconv.Itoa(slot))
		}
		return m
	}
	podName := func(slot, attempt int) string {
		sfx := safeHash(5, o.Key(), hash, strconv.Itoa(slot), strconv.Itoa(attempt))
		if info.Indexed {
			return fmt.Sprintf("%s-%d-%s", o.Metadata.Name, slot, sfx)
		}
		return o.Metadata.Name + "-" + sfx
	}
	addEnv := func(slot int) func(*DesiredPod) {
		if !info.Indexed {
			return nil
		}
		return func(p *DesiredPod) {
			for _, cs := range [][]Container{p.Spec.InitContainers, p.Spec.Containers} {
				for i := range cs {
					cs[i].Env = append(cs[i].Env, EnvVar{Name: EnvJobCompletionIndex, Value: strconv.Itoa(slot)})
				}
			}
		}
	}
	// Finished pods stay as they are.
	done := map[int]bool{}
	attempts := map[int]int{}
	for _, jp := range rec.Pods {
		p, err := e.pod(o, jp.Name, podMeta(jp.Slot), s.Template.Spec, addEnv(jp.Slot))
		if err != nil {
			return err
		}
		if p != nil {
			p.Finished = jp.Phase
		}
		if jp.Phase == PodSucceeded {
			done[jp.Slot] = true
		}
		attempts[jp.Slot]++
	}
	if rec.Finished() || (s.Suspend != nil && *s.Suspend) {
		return nil
	}
	parallelism := 1
	if s.Parallelism != nil {
		parallelism = int(*s.Parallelism)
	}
	retryAt := time.Time{}
	if rec.Failed > 0 && !rec.LastFailure.IsZero() {
		retryAt = rec.LastFailure.Add(JobBackoff(rec.Failed))
	}
	slots := info.Completions
	if s.Completions == nil {
		// A work queue: parallelism pods; the first success completes
		// the Job.
		slots = parallelism
	}
	active := 0
	for slot := 0; slot < slots && active < parallelism; slot++ {
		if done[slot] {
			continue
		}
		active++
		if attempts[slot] > 0 && !e.opts.Now.IsZero() && e.opts.Now.Before(retryAt) {
			e.x.wakeAt(retryAt)
			continue
		}
		name := podName(slot, attempts[slot])
		if _, err := e.pod(o, name, podMeta(slot), s.Template.Spec, addEnv(slot)); err != nil {
			return err
		}
		info.Active[name] = slot
	}
	return nil
}

// cronJob expands the Jobs a CronJob's record says exist: each is named
// <cronjob>-<scheduled time in minutes since the epoch> and made from the
// CronJob's jobTemplate.
func (e *expander) cronJob(o *Object) error {
	key := NamespaceOr(o.Metadata.Namespace) + "/" + o.Metadata.Name
	rec := e.opts.Records.CronJobs[key]
	if rec == nil {
		return nil
	}
	for _, run := range rec.Runs {
		jo := Object{
			TypeMeta: TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
			Metadata: ObjectMeta{
				Name: run.Name, Namespace: o.Metadata.Namespace,
				Labels: o.CronJob.JobTemplate.Metadata.Labels, Annotations: o.CronJob.JobTemplate.Metadata.Annotations,
			},
			Source: o.Source,
			Job:    &o.CronJob.JobTemplate.Spec,
		}
		if err := e.job(&jo, jo.Metadata, *jo.Job, o.Key()); err != nil {
			return err
		}
	}
	return nil
}

// CronJobRunName is the name of the Job a CronJob makes for a scheduled
// time, as Kubernetes names it.
func CronJobRunName(cronJob string, scheduled time.Time) string {
	return fmt.Sprintf("%s-%d", cronJob, scheduled.Unix()/60)
}

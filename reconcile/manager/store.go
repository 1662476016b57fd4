package manager

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"berth.dev/berth/internal/record"
	"berth.dev/berth/reconcile"
)

// RecordStore keeps Records as JSON files under a directory (usually
// <state-dir>/records), one file per object, each replaced atomically:
// jobs/<namespace>_<name>.json, cronjobs/…, deployments/…, pods/….
// Names are DNS-1123, so "_" cannot be part of one.
type RecordStore struct {
	Dir string
}

// NewRecordStore returns the store under stateDir/records.
func NewRecordStore(stateDir string) *RecordStore {
	return &RecordStore{Dir: filepath.Join(stateDir, "records")}
}

func fileKey(key string) string { return strings.ReplaceAll(key, "/", "_") + ".json" }

// Load reads the Job and CronJob records. A store that does not exist
// holds no records. Records that cannot be decoded are left out and named
// in an error that wraps ErrCorruptRecord, returned with the others.
func (s *RecordStore) Load() (*reconcile.Records, error) {
	r := &reconcile.Records{Jobs: map[string]*reconcile.JobRecord{}, CronJobs: map[string]*reconcile.CronJobRecord{}}
	if s == nil {
		return r, nil
	}
	errJobs := loadAll(filepath.Join(s.Dir, "jobs"), func() any { return &reconcile.JobRecord{} }, func(k string, v any) { r.Jobs[k] = v.(*reconcile.JobRecord) })
	errCron := loadAll(filepath.Join(s.Dir, "cronjobs"), func() any { return &reconcile.CronJobRecord{} }, func(k string, v any) { r.CronJobs[k] = v.(*reconcile.CronJobRecord) })
	if err := errors.Join(errJobs, errCron); err != nil && !onlyCorrupt(err) {
		return nil, err
	} else if err != nil {
		// The records that could be read, and the error naming the others.
		return r, err
	}
	return r, nil
}

// Pods reads every pod record, by pod.
func (s *RecordStore) Pods() (map[reconcile.PodID]*reconcile.PodRecord, error) {
	out := map[reconcile.PodID]*reconcile.PodRecord{}
	err := loadAll(filepath.Join(s.Dir, "pods"), func() any { return &reconcile.PodRecord{} }, func(k string, v any) {
		ns, name, _ := strings.Cut(k, "/")
		out[reconcile.PodID{Namespace: ns, Name: name}] = v.(*reconcile.PodRecord)
	})
	return out, err
}

// PodIDs lists the pods that have a record, readable or not, without
// reading any.
func (s *RecordStore) PodIDs() ([]reconcile.PodID, error) {
	ents, err := os.ReadDir(filepath.Join(s.Dir, "pods"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	ids := make([]reconcile.PodID, 0, len(ents))
	for _, name := range recordNames(ents) {
		ns, name, _ := strings.Cut(strings.TrimSuffix(name, ".json"), "_")
		ids = append(ids, reconcile.PodID{Namespace: ns, Name: name})
	}
	return ids, nil
}

// recordNames are the names of the record files among ents: not
// directories, not temporary files (a leading dot), ending in .json.
func recordNames(ents []fs.DirEntry) []string {
	var names []string
	for _, e := range ents {
		name := e.Name()
		if !e.IsDir() && strings.HasSuffix(name, ".json") && !strings.HasPrefix(name, ".") {
			names = append(names, name)
		}
	}
	return names
}

// Deployments reads every Deployment rollout record, by namespace/name.
func (s *RecordStore) Deployments() (map[string]*reconcile.DeploymentRecord, error) {
	out := map[string]*reconcile.DeploymentRecord{}
	err := loadAll(filepath.Join(s.Dir, "deployments"), func() any { return &reconcile.DeploymentRecord{} }, func(k string, v any) {
		out[k] = v.(*reconcile.DeploymentRecord)
	})
	return out, err
}

// ErrCorruptRecord marks records that could not be read; the others are
// still returned.
var ErrCorruptRecord = errors.New("corrupt record")

func loadAll(dir string, mk func() any, put func(string, any)) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var bad []error
	for _, name := range recordNames(ents) {
		v := mk()
		if ok, err := record.Read(dir, name, v); err != nil || !ok {
			if err != nil {
				bad = append(bad, &corruptError{path: filepath.Join(dir, name), err: err})
			}
			continue
		}
		key := strings.Replace(strings.TrimSuffix(name, ".json"), "_", "/", 1)
		put(key, v)
	}
	return errors.Join(bad...)
}

func (s *RecordStore) write(kind, key string, v any) error {
	return record.Write(filepath.Join(s.Dir, kind), fileKey(key), v)
}

func (s *RecordStore) remove(kind, key string) error {
	err := os.Remove(filepath.Join(s.Dir, kind, fileKey(key)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// WriteJob stores the record of Job key (namespace/name).
func (s *RecordStore) WriteJob(key string, r *reconcile.JobRecord) error {
	return s.write("jobs", key, r)
}

// RemoveJob forgets Job key.
func (s *RecordStore) RemoveJob(key string) error { return s.remove("jobs", key) }

// WriteCronJob stores the record of CronJob key.
func (s *RecordStore) WriteCronJob(key string, r *reconcile.CronJobRecord) error {
	return s.write("cronjobs", key, r)
}

// RemoveCronJob forgets CronJob key.
func (s *RecordStore) RemoveCronJob(key string) error { return s.remove("cronjobs", key) }

// WriteDeployment stores the rollout record of Deployment key.
func (s *RecordStore) WriteDeployment(key string, r *reconcile.DeploymentRecord) error {
	return s.write("deployments", key, r)
}

// RemoveDeployment forgets Deployment key.
func (s *RecordStore) RemoveDeployment(key string) error { return s.remove("deployments", key) }

// Pod reads the record of pod id, or nil when there is none.
func (s *RecordStore) Pod(id reconcile.PodID) (*reconcile.PodRecord, error) {
	var r reconcile.PodRecord
	ok, err := record.Read(filepath.Join(s.Dir, "pods"), fileKey(id.String()), &r)
	if err != nil || !ok {
		return nil, err
	}
	return &r, nil
}

// WritePod stores the record of pod id.
func (s *RecordStore) WritePod(id reconcile.PodID, r *reconcile.PodRecord) error {
	return s.write("pods", id.String(), r)
}

// RemovePod forgets pod id.
func (s *RecordStore) RemovePod(id reconcile.PodID) error { return s.remove("pods", id.String()) }

// workloadsFile is the record of the workloads' status the agent last
// computed.
const workloadsFile = "workloads.json"

// WriteWorkloads stores the workloads' status for `berth status`.
func (s *RecordStore) WriteWorkloads(ws []reconcile.WorkloadStatus) error {
	return record.Write(s.Dir, workloadsFile, ws)
}

// Workloads reads the workloads' status the agent last stored; ok is
// false when there is none.
func (s *RecordStore) Workloads() (ws []reconcile.WorkloadStatus, ok bool, err error) {
	ok, err = record.Read(s.Dir, workloadsFile, &ws)
	return ws, ok, err
}

// corruptError is a record that cannot be decoded.
type corruptError struct {
	path string
	err  error
}

func (e *corruptError) Error() string        { return "corrupt record " + e.path + ": " + e.err.Error() }
func (e *corruptError) Is(target error) bool { return target == ErrCorruptRecord }
func (e *corruptError) Unwrap() error        { return e.err }

// onlyCorrupt reports whether every error joined in err is a corrupt
// record.
func onlyCorrupt(err error) bool {
	if _, ok := err.(*corruptError); ok {
		return true
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if !onlyCorrupt(e) {
				return false
			}
		}
		return true
	}
	return false
}

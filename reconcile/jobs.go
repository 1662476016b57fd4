package reconcile

import "time"

func (m *Manager) syncCronJobs(objs []Object, recs *Records, st map[PodID]*PodStatus, now time.Time) time.Time {
	return time.Time{}
}

func (m *Manager) syncJobs(x *expansion, recs *Records, st map[PodID]*PodStatus, observed []ObservedPod, now time.Time) (bool, time.Time) {
	return false, time.Time{}
}

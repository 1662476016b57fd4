package reconcile

import "time"

// rollout decides, per pod, what the workers should do now: the expanded
// pods, gated by each workload's update strategy.
func (m *Manager) rollout(objs []Object, x *expansion, observed []ObservedPod, st map[PodID]*PodStatus, known map[PodID]*DesiredPod, now time.Time) (map[PodID]assignment, []WorkloadStatus, time.Time) {
	plan := map[PodID]assignment{}
	for i := range x.pods {
		plan[x.pods[i].ID] = assignment{d: &x.pods[i]}
	}
	return plan, nil, time.Time{}
}

package reconcile

import (
	"fmt"
	"sort"
)

// HoldBack turns into keeps the changes a workload's update strategy
// holds back, as the manager's rollout does, so a one-shot apply agrees
// with the agent: a StatefulSet's ordinals below its partition, every pod
// of an OnDelete StatefulSet or DaemonSet, and the running pods of a
// ReplicaSet whose template changed (they count toward its replicas; only
// the shortfall is created, the excess deleted). It does no I/O.
func (p *Plan) HoldBack(objs []Object) {
	owners := map[string]*Object{}
	for i := range objs {
		owners[objs[i].Key()] = &objs[i]
	}
	rsCreates := map[string][]int{}
	rsDeletes := map[string][]int{}
	for i := range p.Changes {
		c := &p.Changes[i]
		o := owners[c.Owner]
		if o == nil {
			continue
		}
		switch {
		case o.ReplicaSet != nil:
			switch c.Action {
			case ActionCreate:
				rsCreates[c.Owner] = append(rsCreates[c.Owner], i)
			case ActionDelete:
				rsDeletes[c.Owner] = append(rsDeletes[c.Owner], i)
			}
		case c.Action != ActionReplace || c.FromHash == c.ToHash:
		case c.Observed != nil && !c.Observed.SandboxReady:
			// Broken (a reboot, an interrupted create): made again.
		case o.StatefulSet != nil:
			s := o.StatefulSet.UpdateStrategy
			if s.Type == "OnDelete" {
				c.hold("OnDelete: keeps its old template until deleted")
			} else if ru := s.RollingUpdate; ru != nil && ru.Partition != nil {
				if ord := StatefulSetOrdinal(o.Metadata.Name, c.Pod.Name); ord >= 0 && ord < int(*ru.Partition) {
					c.hold(fmt.Sprintf("below partition %d: keeps its old template", *ru.Partition))
				}
			}
		case o.DaemonSet != nil && o.DaemonSet.UpdateStrategy.Type == "OnDelete":
			c.hold("OnDelete: keeps its old template until deleted")
		}
	}
	// A ReplicaSet: old pods (to be deleted by name) stand in for the new
	// pods that would replace them.
	var drop []int
	for owner, dels := range rsDeletes {
		creates := rsCreates[owner]
		sort.Ints(dels)
		n := min(len(dels), len(creates))
		for k := 0; k < n; k++ {
			p.Changes[dels[k]].hold("a ReplicaSet keeps its running pods when its template changes")
			drop = append(drop, creates[len(creates)-1-k])
		}
	}
	if len(drop) == 0 {
		return
	}
	sort.Ints(drop)
	out := p.Changes[:0]
	for i, c := range p.Changes {
		if len(drop) > 0 && drop[0] == i {
			drop = drop[1:]
			continue
		}
		out = append(out, c)
	}
	p.Changes = out
}

func (c *Change) hold(why string) {
	c.Action, c.Reason = ActionKeep, why
}

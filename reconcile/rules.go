package reconcile

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Earliest returns the earlier of a and b, a zero time counting as none.
func Earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero():
		return a
	case b.Before(a):
		return b
	}
	return a
}

// ShortRevision shortens a commit hash to 12 characters for messages; a
// directory digest ("dir:…") stays as it is.
func ShortRevision(rev string) string {
	if len(rev) > 12 && !strings.Contains(rev, ":") {
		return rev[:12]
	}
	return rev
}

// ShouldRestart applies a restart policy to a container that exited with
// code, as kubelet does.
func ShouldRestart(policy string, code int) bool {
	switch policy {
	case RestartNever:
		return false
	case RestartOnFailure:
		return code != 0
	}
	return true
}

// PodRestarts is how many container restarts of the Job's pod name were
// counted so far.
func (r *JobRecord) PodRestarts(name string) int { return r.Restarts[name] }

// cronParser parses standard five-field cron expressions and the macros
// (@yearly, @monthly, @weekly, @daily, @midnight, @hourly), with an
// optional CRON_TZ= or TZ= prefix, as Kubernetes does.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule parses a CronJob's schedule in its time zone (nil: the
// host's local time).
func ParseSchedule(schedule string, timeZone *string) (cron.Schedule, error) {
	sched, err := cronParser.Parse(schedule)
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %w", schedule, err)
	}
	if timeZone != nil && *timeZone != "" {
		loc, err := time.LoadLocation(*timeZone)
		if err != nil {
			return nil, fmt.Errorf("timeZone %q: %w", *timeZone, err)
		}
		if s, ok := sched.(*cron.SpecSchedule); ok {
			s.Location = loc
		}
	}
	return sched, nil
}

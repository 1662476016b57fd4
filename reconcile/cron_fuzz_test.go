package reconcile_test

import (
	"testing"
	"time"

	"berth.dev/berth/reconcile"
)

// FuzzParseSchedule feeds schedules from repositories (untrusted) to the
// parser and to Next: neither may panic, and a next time is after the
// time asked about.
func FuzzParseSchedule(f *testing.F) {
	for _, s := range []string{"*/5 * * * *", "@hourly", "0 0 29 2 *", "CRON_TZ=Europe/Berlin 30 2 * * 0", "1-5/2 * * jan-mar mon", "@every 1h", "", "* * * * * *"} {
		f.Add(s, "UTC")
	}
	f.Add("0 3 * * *", "America/New_York")
	f.Fuzz(func(t *testing.T, schedule, tz string) {
		var zone *string
		if tz != "" {
			zone = &tz
		}
		s, err := reconcile.ParseSchedule(schedule, zone)
		if err != nil {
			return
		}
		from := time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC)
		if next := s.Next(from); !next.IsZero() && !next.After(from) {
			t.Errorf("Next(%s) = %s for %q", from, next, schedule)
		}
	})
}

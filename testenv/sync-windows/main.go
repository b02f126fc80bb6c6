// The sync-window oracle: ESO v2.9.0's syncWindows rule evaluated with the cron library
// ESO pins (robfig/cron v3.0.1), for courier's tests (tests/sync_windows.rs).
//
// Each stdin line is `schedule<TAB>duration<TAB>kind<TAB>at`, `at` in nanoseconds since
// the Unix epoch (UTC); each stdout line answers it: `allowed parsed prev`, where
// `allowed` is 1 when a periodic refresh is allowed at `at` by that one window, `parsed` is
// 1 when robfig parsed the schedule (0: ESO skips the window), `prev` is the schedule's
// Next(at - duration - 1s) in whole seconds since the epoch (robfig's firings are whole
// seconds), `z` for robfig's zero time or no schedule. A
// duration time.ParseDuration refuses (ESO could not read such an object) answers `bad`.
//
// The rule restated from pkg/controllers/externalsecret/externalsecret_controller.go
// (isWithinSyncWindow, cronParser, isPeriodicRefreshAllowedByWindows); the cron parsing
// and Next are robfig's own code.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

func answer(line string) string {
	parts := strings.Split(line, "\t")
	if len(parts) != 4 {
		return "bad"
	}
	duration, err := time.ParseDuration(parts[1])
	if err != nil {
		return "bad"
	}
	nanos, err := strconv.ParseInt(parts[3], 10, 64)
	if err != nil {
		return "bad"
	}
	at := time.Unix(0, nanos).UTC()
	active, parsed, prevText := false, 0, "z"
	if sched, err := parser.Parse(parts[0]); err == nil {
		parsed = 1
		prev := sched.Next(at.Add(-duration - time.Second))
		if !prev.IsZero() {
			prevText = strconv.FormatInt(prev.Unix(), 10)
		}
		active = !prev.IsZero() && !prev.After(at) && !at.After(prev.Add(duration))
	}
	allowed := true
	switch parts[2] {
	case "deny":
		allowed = !active
	case "allow":
		allowed = active
	}
	a := 0
	if allowed {
		a = 1
	}
	return fmt.Sprintf("%d %d %s", a, parsed, prevText)
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for in.Scan() {
		fmt.Fprintln(out, answer(in.Text()))
	}
}

// Package durfmt formats durations for people reading a table or a page at a
// glance: one whole unit, rounded down ("42s", "5m", "47h", "3d"). The CLI's
// job list and the dashboard both print ages this way, so they read alike.
package durfmt

import (
	"fmt"
	"time"
)

// Short formats d in its largest whole unit: seconds under a minute, minutes
// under an hour, hours under two days, then days. A negative d (a timestamp
// from a clock slightly ahead of this one) reads as "0s".
func Short(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

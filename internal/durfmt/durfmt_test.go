package durfmt

import (
	"testing"
	"time"
)

func TestShort(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{-2 * time.Hour, "0s"},
		{-time.Nanosecond, "0s"},
		{0, "0s"},
		{999 * time.Millisecond, "0s"},
		{time.Second, "1s"},
		{time.Minute - time.Nanosecond, "59s"},
		{time.Minute, "1m"},
		{90 * time.Second, "1m"},
		{time.Hour - time.Nanosecond, "59m"},
		{time.Hour, "1h"},
		{48*time.Hour - time.Nanosecond, "47h"},
		{48 * time.Hour, "2d"},
		{71 * time.Hour, "2d"},
		{72 * time.Hour, "3d"},
		{400 * 24 * time.Hour, "400d"},
	} {
		if got := Short(tc.d); got != tc.want {
			t.Errorf("Short(%v): got %q, want %q", tc.d, got, tc.want)
		}
	}
}

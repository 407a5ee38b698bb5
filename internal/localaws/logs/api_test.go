package logs

import (
	"fmt"
	"testing"
	"time"
)

func TestEventWindow(t *testing.T) {
	t.Parallel()
	cases := []struct {
		n        int
		token    string
		fromHead bool
		limit    int
		lo, hi   int
	}{
		{10, "", true, 3, 0, 3},
		{10, "", false, 3, 7, 10},
		{10, "f/3", false, 3, 3, 6},
		{10, "f/9", false, 3, 9, 10},
		{10, "f/10", false, 3, 10, 10}, // caught up: the same token comes back
		{10, "b/3", false, 5, 0, 3},
		{0, "", true, 5, 0, 0},
	}
	for _, tc := range cases {
		lo, hi, err := eventWindow(tc.n, tc.token, tc.fromHead, tc.limit)
		if err != nil || lo != tc.lo || hi != tc.hi {
			t.Errorf("eventWindow(%d, %q, %v, %d): got [%d,%d) %v, want [%d,%d)", tc.n, tc.token, tc.fromHead, tc.limit, lo, hi, err, tc.lo, tc.hi)
		}
	}
	if _, _, err := eventWindow(3, "x/1", true, 1); err == nil {
		t.Errorf("bad token: got no error, want one")
	}
}

func TestMatchPattern(t *testing.T) {
	t.Parallel()
	cases := []struct {
		pattern, msg string
		want         bool
	}{
		{"", "anything", true},
		{"error", "an error here", true},
		{"error timeout", "error only", false},
		{`"disk full"`, "the disk full again", true},
		{"error -retry", "error, will retry", false},
		{"error -retry", "error, giving up", true},
	}
	for _, tc := range cases {
		if got := MatchPattern(tc.pattern)(tc.msg); got != tc.want {
			t.Errorf("MatchPattern(%q)(%q): got %v, want %v", tc.pattern, tc.msg, got, tc.want)
		}
	}
}

// FuzzMatchPattern: any user filter pattern compiles without panicking, and
// the empty message only matches patterns without required terms.
func FuzzMatchPattern(f *testing.F) {
	for _, s := range []string{"", "a b", `"x y" -z`, `-`, `"`, `- "`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, pattern string) {
		_ = MatchPattern(pattern)("some message")
	})
}

func TestStoreReopens(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := Open(dir, "us-east-1", "000000000000")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := s.Put("/g", "job/algo-1-1", time.UnixMilli(int64(1000+i)), fmt.Sprint("line ", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, "us-east-1", "000000000000")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if last, ok := s.Last("/g", "job/algo-1-1"); !ok || last != 1002 {
		t.Errorf("Last after reopening: got %d %v, want 1002 true", last, ok)
	}
}

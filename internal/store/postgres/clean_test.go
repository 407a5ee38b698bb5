package postgres

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClean(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{"", ""},
		{"plain", "plain"},
		{"ünïcödé ✓", "ünïcödé ✓"},
		{"a\x00b", "a\uFFFDb"},
		{"bad \xff\xfe end", "bad \uFFFD end"},
		{"\x00\xff", "\uFFFD\uFFFD"},
	}
	for _, tc := range cases {
		if got := clean(tc.in); got != tc.want {
			t.Errorf("clean(%q): got %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzClean(f *testing.F) {
	for _, s := range []string{"", "x", "a\x00b", "\xff", "✓\xe2\x9c", "\uFFFD"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := clean(s)
		if !utf8.ValidString(got) || strings.Contains(got, "\x00") {
			t.Fatalf("clean(%q) = %q: want valid UTF-8 without NUL", s, got)
		}
		if utf8.ValidString(s) && !strings.Contains(s, "\x00") && got != s {
			t.Fatalf("clean(%q) = %q: want text that PostgreSQL can hold unchanged", s, got)
		}
		if again := clean(got); again != got {
			t.Fatalf("clean(clean(%q)) = %q, want %q", s, again, got)
		}
	})
}

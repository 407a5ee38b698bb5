package job_test

import (
	"errors"
	"testing"

	"github.com/slipway-ml/slipway/internal/job"
)

func TestParseGitSource(t *testing.T) {
	t.Parallel()
	good := []struct{ in, url, ref string }{
		{"https://example.com/org/repo.git", "https://example.com/org/repo.git", ""},
		{"https://example.com/org/repo.git@v1.2", "https://example.com/org/repo.git", "v1.2"},
		{"https://example.com/org/repo@feature/x", "https://example.com/org/repo", "feature/x"},
		{"ssh://git@example.com/org/repo", "ssh://git@example.com/org/repo", ""},
		{"ssh://git@example.com/org/repo@main", "ssh://git@example.com/org/repo", "main"},
		{"git@example.com:org/repo.git", "git@example.com:org/repo.git", ""},
		{"git@example.com:org/repo.git@0123abcd", "git@example.com:org/repo.git", "0123abcd"},
		{"file:///srv/repos/train", "file:///srv/repos/train", ""},
	}
	for _, tt := range good {
		g, err := job.ParseGitSource(tt.in)
		if err != nil || g.URL != tt.url || g.Ref != tt.ref {
			t.Errorf("ParseGitSource(%q) = %+v, %v; want url %q ref %q", tt.in, g, err, tt.url, tt.ref)
		}
	}
	for _, bad := range []string{
		"ext::sh -c touch% /tmp/pwned",
		"-uhttps://example.com/r",
		"https://example.com/r@-branch",
		"https://example.com/r@a..b",
		"https://example.com",
		"ftp://example.com/r",
		"https://example.com/r@has space",
		"repo-without-host",
		"https://example.com/acme/../evil/repo",
		"https://example.com/acme/%2e%2E/evil",
		"file:///srv/allowed/../private",
		"git@example.com:acme/../evil",
		"ssh://example.com/./acme",
		"https://example.com/acme/%zz",
		"",
	} {
		if _, err := job.ParseGitSource(bad); !errors.Is(err, job.ErrInvalid) {
			t.Errorf("ParseGitSource(%q): got %v, want ErrInvalid", bad, err)
		}
	}
}

func FuzzParseGitSource(f *testing.F) {
	for _, s := range []string{"https://h/r@v1", "git@h:r", "ext::x", "ssh://u@h/p@r", "file:///x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		g, err := job.ParseGitSource(s)
		if err != nil {
			return
		}
		if g.Validate() != nil || len(g.URL) == 0 || g.URL[0] == '-' {
			t.Fatalf("ParseGitSource(%q) accepted %+v", s, g)
		}
	})
}

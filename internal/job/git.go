package job

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// GitSource is code the agent fetches from a git repository at a ref,
// instead of code sent with the job (launch --git URL[@REF]).
type GitSource struct {
	URL string `json:"url"`
	Ref string `json:"ref,omitempty"` // a branch, tag or commit; default the remote's HEAD
}

// gitSchemes are the transports a git URL may use; others, like git's
// ext:: which runs a command, are refused.
var gitSchemes = []string{"https", "http", "ssh", "git", "file"}

// Validate checks the URL and ref so that neither can smuggle options or
// commands to git: only known transports, no leading '-', no whitespace or
// control characters, no ".." in a ref.
func (g GitSource) Validate() error {
	if err := cleanGitString("git.url", g.URL); err != nil {
		return err
	}
	if err := cleanGitString("git.ref", g.Ref); err != nil {
		return err
	}
	if strings.Contains(g.Ref, "..") || strings.HasSuffix(g.Ref, ".lock") || strings.ContainsAny(g.Ref, "~^:?*[\\") {
		return fmt.Errorf("%w: git.ref %q: not a valid branch, tag or commit name", ErrInvalid, g.Ref)
	}
	if scheme, _, ok := strings.Cut(g.URL, "://"); ok {
		u, err := url.Parse(g.URL)
		if err != nil || !slices.Contains(gitSchemes, strings.ToLower(scheme)) || (u.Host == "" && scheme != "file") || u.Path == "" {
			return fmt.Errorf("%w: git.url %q: want https://, ssh://, git:// or file:// with a host and a path", ErrInvalid, g.URL)
		}
		return plainGitPath(g.URL, u.EscapedPath())
	}
	// scp-like: [user@]host:path
	host, path, ok := strings.Cut(g.URL, ":")
	if !ok || host == "" || path == "" || strings.Contains(host, "/") {
		return fmt.Errorf("%w: git.url %q: want https://HOST/PATH, ssh://HOST/PATH or USER@HOST:PATH", ErrInvalid, g.URL)
	}
	return plainGitPath(g.URL, path)
}

// plainGitPath refuses "." and ".." segments in a git URL's path, escaped
// or not: git and the servers in front of repositories resolve them, so
// "https://host/acme/../evil" would reach what a queue policy allowing
// "https://host/acme/" means to keep out.
func plainGitPath(rawURL, path string) error {
	p, err := url.PathUnescape(path)
	if err != nil {
		return fmt.Errorf("%w: git.url %q: bad escape in its path", ErrInvalid, rawURL)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return fmt.Errorf("%w: git.url %q: no . or .. path segments", ErrInvalid, rawURL)
		}
	}
	return nil
}

func cleanGitString(field, s string) error {
	if strings.HasPrefix(s, "-") {
		return fmt.Errorf("%w: %s %q: must not start with '-'", ErrInvalid, field, s)
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return fmt.Errorf("%w: %s %q: no spaces or control characters", ErrInvalid, field, s)
		}
	}
	return nil
}

// ParseGitSource splits "URL[@REF]": the ref follows the last '@' that
// comes after the start of the URL's path, so that user@host is not taken
// for one.
func ParseGitSource(s string) (GitSource, error) {
	pathStart := 0
	if i := strings.Index(s, "://"); i >= 0 {
		j := strings.Index(s[i+3:], "/")
		if j < 0 {
			return GitSource{}, fmt.Errorf("%w: git url %q: no path", ErrInvalid, s)
		}
		pathStart = i + 3 + j
	} else if i := strings.Index(s, ":"); i >= 0 {
		pathStart = i
	}
	g := GitSource{URL: s}
	if at := strings.LastIndex(s, "@"); at > pathStart {
		g.URL, g.Ref = s[:at], s[at+1:]
	}
	return g, g.Validate()
}

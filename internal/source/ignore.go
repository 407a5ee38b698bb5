package source

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"

	"github.com/slipway-ml/slipway/internal/job"
)

// Ignore says which paths of a code directory stay out of its tarball.
// The zero value ignores nothing.
type Ignore struct {
	pm   *patternmatcher.PatternMatcher // from .dockerignore
	git  []gitignore.Pattern            // from the .gitignore files read so far
	From string                         // ".dockerignore", ".gitignore" or ""
}

// LoadIgnore reads the ignore rules of dir: its .dockerignore when there is
// one (Docker's syntax), else its .gitignore files (git's syntax, through
// go-git). The top-level .gitignore is read here; Pack reads each nested
// one as it walks into its folder, as git does.
func LoadIgnore(dir string) (Ignore, error) {
	if b, err := os.ReadFile(filepath.Join(dir, ".dockerignore")); err == nil {
		return ParseDockerignore(b)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Ignore{}, fmt.Errorf("reading .dockerignore: %w", err)
	}
	ig := Ignore{From: ".gitignore"}
	if err := ig.enter(dir, ""); err != nil {
		return Ignore{}, err
	}
	return ig, nil
}

// ParseDockerignore reads patterns in .dockerignore syntax.
func ParseDockerignore(b []byte) (Ignore, error) {
	pats, err := ignorefile.ReadAll(bytes.NewReader(b))
	if err != nil {
		return Ignore{}, fmt.Errorf("%w: .dockerignore: %v", job.ErrInvalid, err)
	}
	return newIgnore(pats, ".dockerignore")
}

// enter reads the .gitignore of rel, a slash-separated folder of root
// ("" for root itself), when ig follows git's rules.
func (ig *Ignore) enter(root, rel string) error {
	if ig.From != ".gitignore" {
		return nil
	}
	name := filepath.Join(root, filepath.FromSlash(rel), ".gitignore")
	b, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", path.Join(rel, ".gitignore"), err)
	}
	var domain []string
	if rel != "" {
		domain = strings.Split(rel, "/")
	}
	ig.addGit(b, domain)
	return nil
}

// addGit adds the patterns of one .gitignore, found in the folder domain;
// later ones (deeper folders) take precedence, as in git.
func (ig *Ignore) addGit(b []byte, domain []string) {
	for line := range strings.Lines(string(b)) {
		line = strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		ig.git = append(ig.git, gitignore.ParsePattern(line, domain))
	}
}

func newIgnore(pats []string, from string) (Ignore, error) {
	pm, err := patternmatcher.New(pats)
	if err != nil {
		return Ignore{}, fmt.Errorf("%w: %s: %v", job.ErrInvalid, from, err)
	}
	// patternmatcher compiles a pattern when first used, and one that does
	// not compile as a regular expression (like `\1`) makes every later
	// match panic; try each alone once, so it is an error here instead.
	for _, p := range pats {
		one, err := patternmatcher.New([]string{p})
		if err == nil {
			_, err = one.MatchesOrParentMatches("x")
		}
		if err != nil {
			return Ignore{}, fmt.Errorf("%w: %s: pattern %q: %v", job.ErrInvalid, from, p, err)
		}
	}
	return Ignore{pm: pm, From: from}, nil
}

// Match reports whether rel, a slash-separated path relative to the
// directory (a folder when isDir), is ignored. The Dockerfile is never
// ignored: a build needs it.
func (ig Ignore) Match(rel string, isDir bool) bool {
	switch {
	case rel == "Dockerfile":
		return false
	case ig.pm != nil:
		m, err := ig.pm.MatchesOrParentMatches(filepath.FromSlash(rel))
		return err == nil && m
	case len(ig.git) > 0:
		return gitignore.NewMatcher(ig.git).Match(strings.Split(rel, "/"), isDir)
	}
	return false
}

// prunes reports whether a whole ignored directory can be skipped: always
// under git's rules (git does not look into an ignored folder), under
// Docker's only when no "!" pattern could bring something under it back.
func (ig Ignore) prunes() bool {
	return ig.From == ".gitignore" || (ig.pm != nil && !ig.pm.Exclusions())
}

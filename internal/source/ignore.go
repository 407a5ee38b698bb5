package source

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"

	"github.com/slipway-ml/slipway/internal/job"
)

// Ignore says which paths of a code directory stay out of its tarball.
// The zero value ignores nothing.
type Ignore struct {
	pm   *patternmatcher.PatternMatcher
	From string // the file the patterns came from: ".dockerignore", ".gitignore" or ""
}

// LoadIgnore reads the ignore rules of dir: its .dockerignore when there is
// one (Docker's syntax), else its top-level .gitignore (git's syntax,
// translated: a pattern without a slash matches at any depth, a leading
// slash anchors it at the top, a trailing slash is a directory and all it
// holds). Nested .gitignore files are not read.
func LoadIgnore(dir string) (Ignore, error) {
	if b, err := os.ReadFile(filepath.Join(dir, ".dockerignore")); err == nil {
		return ParseDockerignore(b)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Ignore{}, fmt.Errorf("reading .dockerignore: %w", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, ".gitignore")); err == nil {
		return ParseGitignore(b)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Ignore{}, fmt.Errorf("reading .gitignore: %w", err)
	}
	return Ignore{}, nil
}

// ParseDockerignore reads patterns in .dockerignore syntax.
func ParseDockerignore(b []byte) (Ignore, error) {
	pats, err := ignorefile.ReadAll(bytes.NewReader(b))
	if err != nil {
		return Ignore{}, fmt.Errorf("%w: .dockerignore: %v", job.ErrInvalid, err)
	}
	return newIgnore(pats, ".dockerignore")
}

// ParseGitignore reads patterns in .gitignore syntax.
func ParseGitignore(b []byte) (Ignore, error) {
	var pats []string
	for line := range strings.Lines(string(b)) {
		if p, ok := gitPattern(line); ok {
			pats = append(pats, p)
		}
	}
	return newIgnore(pats, ".gitignore")
}

// gitPattern translates one .gitignore line into a .dockerignore pattern.
func gitPattern(line string) (string, bool) {
	line = strings.TrimRight(line, "\r\n")
	if !strings.HasSuffix(line, `\ `) {
		line = strings.TrimRight(line, " \t")
	}
	if line == "" || line[0] == '#' {
		return "", false
	}
	neg := ""
	switch {
	case line[0] == '!':
		neg, line = "!", line[1:]
	case strings.HasPrefix(line, `\#`), strings.HasPrefix(line, `\!`):
		line = line[1:]
	}
	line = strings.TrimSuffix(line, "/")
	if line == "" || line == "/" {
		return "", false
	}
	if strings.HasPrefix(line, "/") {
		line = strings.TrimLeft(line, "/")
	} else if !strings.Contains(line, "/") {
		line = "**/" + line
	}
	return neg + line, true
}

func newIgnore(pats []string, from string) (Ignore, error) {
	pm, err := patternmatcher.New(pats)
	if err != nil {
		return Ignore{}, fmt.Errorf("%w: %s: %v", job.ErrInvalid, from, err)
	}
	return Ignore{pm: pm, From: from}, nil
}

// Match reports whether rel, a slash-separated path relative to the
// directory, is ignored. The Dockerfile is never ignored: a build needs it.
func (ig Ignore) Match(rel string) bool {
	if ig.pm == nil || rel == "Dockerfile" {
		return false
	}
	m, err := ig.pm.MatchesOrParentMatches(filepath.FromSlash(rel))
	return err == nil && m
}

// prunes reports whether a whole ignored directory can be skipped: only when
// no "!" pattern could bring something under it back.
func (ig Ignore) prunes() bool { return ig.pm != nil && !ig.pm.Exclusions() }

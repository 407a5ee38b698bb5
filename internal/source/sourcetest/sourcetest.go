// Package sourcetest makes real git repositories for tests of code that
// fetches job code from git.
package sourcetest

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// GitRepo makes a repository with one commit per version, each writing
// train.sh as `echo <version>` and tagged <version>, and returns its folder
// and the commits' hashes in order.
func GitRepo(t testing.TB, versions ...string) (dir string, commits []string) {
	t.Helper()
	dir = t.TempDir()
	repo, err := git.PlainInit(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	sig := &object.Signature{Name: "test", Email: "test@example.com", When: time.Unix(1, 0)}
	for _, v := range versions {
		if err := os.WriteFile(filepath.Join(dir, "train.sh"), []byte("echo "+v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := wt.Add("train.sh"); err != nil {
			t.Fatal(err)
		}
		h, err := wt.Commit(v, &git.CommitOptions{Author: sig})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := repo.CreateTag(v, h, nil); err != nil {
			t.Fatal(err)
		}
		commits = append(commits, h.String())
	}
	return dir, commits
}

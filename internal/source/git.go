package source

import (
	"context"
	"fmt"
	"os"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/slipway-ml/slipway/internal/job"
)

// FetchGit clones g into a new temporary directory and checks out its ref
// (a branch, tag or commit; the remote's HEAD when empty), then packs the
// tree as Pack does. It returns the tarball and the commit it holds. The
// clone goes through go-git, so the agent needs no git binary.
func FetchGit(ctx context.Context, g job.GitSource, limit int64) (tarball []byte, commit string, err error) {
	if err := g.Validate(); err != nil {
		return nil, "", err
	}
	dir, err := os.MkdirTemp("", "slipway-git-")
	if err != nil {
		return nil, "", err
	}
	defer os.RemoveAll(dir)
	repo, err := git.PlainCloneContext(ctx, dir, false, &git.CloneOptions{URL: g.URL, Tags: git.AllTags})
	if err != nil {
		return nil, "", fmt.Errorf("cloning %s: %w", g.URL, err)
	}
	if g.Ref != "" {
		hash, err := resolve(repo, g.Ref)
		if err != nil {
			return nil, "", fmt.Errorf("%w: git ref %q of %s: %v", job.ErrInvalid, g.Ref, g.URL, err)
		}
		wt, err := repo.Worktree()
		if err != nil {
			return nil, "", err
		}
		if err := wt.Checkout(&git.CheckoutOptions{Hash: hash, Force: true}); err != nil {
			return nil, "", fmt.Errorf("checking out %s: %w", g.Ref, err)
		}
	}
	head, err := repo.Head()
	if err != nil {
		return nil, "", fmt.Errorf("reading HEAD of %s: %w", g.URL, err)
	}
	tarball, err = Pack(dir, limit)
	return tarball, head.Hash().String(), err
}

// resolve finds ref as a remote branch, a tag, or a commit.
func resolve(repo *git.Repository, ref string) (plumbing.Hash, error) {
	for _, rev := range []string{"refs/remotes/origin/" + ref, "refs/tags/" + ref, ref} {
		if h, err := repo.ResolveRevision(plumbing.Revision(rev)); err == nil {
			return *h, nil
		}
	}
	return plumbing.ZeroHash, fmt.Errorf("no branch, tag or commit by that name")
}

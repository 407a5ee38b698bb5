package source_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/source"
	"github.com/slipway-ml/slipway/internal/source/sourcetest"
)

func fileIn(t *testing.T, tarball []byte, name string) string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(tarball))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s not in the tarball: %v", name, err)
		}
		if h.Name == name {
			b, _ := io.ReadAll(tr)
			return string(b)
		}
	}
}

func TestFetchGitAtARef(t *testing.T) {
	t.Parallel()
	dir, commits := sourcetest.GitRepo(t, "v1", "v2")
	first := commits[0]
	url := "file://" + dir
	ctx := context.Background()
	for _, tt := range []struct{ ref, want string }{{"", "echo v2\n"}, {"v1", "echo v1\n"}, {first, "echo v1\n"}, {"master", "echo v2\n"}} {
		tarball, commit, err := source.FetchGit(ctx, job.GitSource{URL: url, Ref: tt.ref}, 1<<20)
		if err != nil {
			t.Fatalf("ref %q: %v", tt.ref, err)
		}
		if got := fileIn(t, tarball, "train.sh"); got != tt.want {
			t.Errorf("ref %q: train.sh = %q, want %q", tt.ref, got, tt.want)
		}
		if len(commit) != 40 {
			t.Errorf("ref %q: commit %q, want a full hash", tt.ref, commit)
		}
	}
	if _, _, err := source.FetchGit(ctx, job.GitSource{URL: url, Ref: "no-such-ref"}, 1<<20); !errors.Is(err, job.ErrInvalid) {
		t.Errorf("an unknown ref: got %v, want ErrInvalid", err)
	}
}

package source

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/job"
)

// writeTree makes files under dir; a name ending in "/" is a directory.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// names lists the regular files and links in a packed tarball.
func names(t *testing.T, tgz []byte) []string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(tgz))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var out []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeDir {
			out = append(out, h.Name)
		}
	}
}

func TestPackIgnores(t *testing.T) {
	t.Parallel()
	tree := map[string]string{
		"train.py": "print(1)", "Dockerfile": "FROM x", "data/big.bin": "xx", "data/keep.txt": "k",
		"src/model.py": "m", "src/cache.pyc": "c", "logs/a.log": "l", "deep/er/x.pyc": "p",
		".git/HEAD": "ref", "notes.md": "n",
	}
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"none", nil, []string{"Dockerfile", "data/big.bin", "data/keep.txt", "deep/er/x.pyc", "logs/a.log", "notes.md", "src/cache.pyc", "src/model.py", "train.py"}},
		{"dockerignore", map[string]string{".dockerignore": "# comment\ndata\n**/*.pyc\nDockerfile\n!data/keep.txt\n"},
			[]string{".dockerignore", "Dockerfile", "data/keep.txt", "logs/a.log", "notes.md", "src/model.py", "train.py"}},
		{"dockerignore wins over gitignore", map[string]string{".dockerignore": "logs\n", ".gitignore": "data/\n"},
			[]string{".dockerignore", ".gitignore", "Dockerfile", "data/big.bin", "data/keep.txt", "deep/er/x.pyc", "notes.md", "src/cache.pyc", "src/model.py", "train.py"}},
		{"gitignore", map[string]string{".gitignore": "*.pyc\n/logs/\ndata/*\n!data/keep.txt\n\\#x\n\n"},
			[]string{".gitignore", "Dockerfile", "data/keep.txt", "notes.md", "src/model.py", "train.py"}},
		{"gitignore unanchored name", map[string]string{".gitignore": "er\nnotes.md\n"},
			[]string{".gitignore", "Dockerfile", "data/big.bin", "data/keep.txt", "logs/a.log", "src/cache.pyc", "src/model.py", "train.py"}},
		{"nested gitignores", map[string]string{".gitignore": "*.pyc\n", "src/.gitignore": "!cache.pyc\n/model.py\n", "data/.gitignore": "*\n!.gitignore\n", "deep/.gitignore": "x.pyc\n"},
			[]string{".gitignore", "Dockerfile", "data/.gitignore", "deep/.gitignore", "logs/a.log", "notes.md", "src/.gitignore", "src/cache.pyc", "train.py"}},
		{"a nested gitignore stays in its folder", map[string]string{"src/.gitignore": "*.log\n/er\n"},
			[]string{"Dockerfile", "data/big.bin", "data/keep.txt", "deep/er/x.pyc", "logs/a.log", "notes.md", "src/.gitignore", "src/cache.pyc", "src/model.py", "train.py"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeTree(t, dir, tree)
			writeTree(t, dir, tc.files)
			b, err := Pack(dir, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if got := names(t, b); !slices.Equal(got, tc.want) {
				t.Errorf("packed files:\n got %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestPackDeterministic(t *testing.T) {
	t.Parallel()
	a, b := t.TempDir(), t.TempDir()
	files := map[string]string{"a.py": "1", "sub/b.py": "2", ".dockerignore": "*.tmp", "x.tmp": "junk"}
	writeTree(t, a, files)
	writeTree(t, b, files)
	writeTree(t, b, map[string]string{"y.tmp": "other junk"})
	pa, err := Pack(a, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := Pack(b, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pa, pb) {
		t.Errorf("same code (ignored files aside) packed to different bytes: %d vs %d bytes", len(pa), len(pb))
	}
}

func TestPackLimit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	big := make([]byte, 64<<10)
	rng := rand.New(rand.NewPCG(1, 2)) // incompressible, so the limit bites
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	writeTree(t, dir, map[string]string{"weights.bin": string(big)})
	_, err := Pack(dir, 1<<10)
	if !errors.Is(err, job.ErrInvalid) || !strings.Contains(err.Error(), ".dockerignore") {
		t.Errorf("got %v, want ErrInvalid naming .dockerignore", err)
	}
	writeTree(t, dir, map[string]string{".dockerignore": "*.bin"})
	if _, err := Pack(dir, 1<<10); err != nil {
		t.Errorf("with the weights ignored: got %v, want no error", err)
	}
}

func TestPackBadIgnore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{".dockerignore": "!\n", "a": "1"})
	if _, err := Pack(dir, 1<<20); !errors.Is(err, job.ErrInvalid) {
		t.Errorf("got %v, want ErrInvalid", err)
	}
}

func FuzzIgnore(f *testing.F) {
	f.Add([]byte("*.pyc\n!keep\n/data/\n"), "data/x")
	f.Add([]byte("[\n"), "a")
	f.Fuzz(func(t *testing.T, b []byte, rel string) {
		gitParse := func(b []byte) (Ignore, error) {
			ig := Ignore{From: ".gitignore"}
			ig.addGit(b, nil) // as LoadIgnore does with a top-level .gitignore
			return ig, nil
		}
		for _, parse := range []func([]byte) (Ignore, error){ParseDockerignore, gitParse} {
			ig, err := parse(b)
			if err != nil {
				if !errors.Is(err, job.ErrInvalid) {
					t.Fatalf("error %v does not wrap ErrInvalid", err)
				}
				continue
			}
			_ = ig.Match(rel, false)
			_ = ig.Match(rel, true)
			if ig.Match("Dockerfile", false) {
				t.Fatalf("Dockerfile ignored by %q", b)
			}
		}
	})
}

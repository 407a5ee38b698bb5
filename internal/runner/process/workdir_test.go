package process_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/runner/process"
)

// entry is one tar entry for a test archive.
type entry struct {
	name, body, link string
	typ              byte
}

func archive(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		hdr := &tar.Header{Typeflag: typ, Name: e.name, Linkname: e.link, Mode: 0o644, Size: int64(len(e.body))}
		if typ != tar.TypeReg {
			hdr.Size = 0
		}
		if typ == tar.TypeDir {
			hdr.Mode = 0o755
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestUnpack(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	err := process.Unpack(bytes.NewReader(archive(t,
		entry{name: "./", typ: tar.TypeDir},
		entry{name: "src/", typ: tar.TypeDir},
		entry{name: "src/train.py", body: "print('hi')\n"},
		entry{name: "deep/er/file.txt", body: "x"},
		entry{name: "link", link: "src/train.py", typ: tar.TypeSymlink},
		entry{name: "src/up", link: "../deep", typ: tar.TypeSymlink},
		entry{name: "hard", link: "src/train.py", typ: tar.TypeLink},
	)), dir)
	if err != nil {
		t.Fatalf("Unpack: %v", err)
	}
	for name, want := range map[string]string{
		"src/train.py": "print('hi')\n", "deep/er/file.txt": "x", "link": "print('hi')\n",
		"src/up/er/file.txt": "x", "hard": "print('hi')\n",
	} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != want {
			t.Errorf("%s: got %q, %v, want %q", name, got, err, want)
		}
	}
}

func TestUnpackRefusesEscapes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		entries []entry
	}{
		{"absolute", []entry{{name: "/etc/evil", body: "x"}}},
		{"dotdot", []entry{{name: "../evil", body: "x"}}},
		{"dotdot inside", []entry{{name: "a/../../evil", body: "x"}}},
		{"absolute symlink", []entry{{name: "l", link: "/etc", typ: tar.TypeSymlink}}},
		{"climbing symlink", []entry{{name: "a/l", link: "../../x", typ: tar.TypeSymlink}}},
		{"dotdot after a name", []entry{{name: "l", link: "x/../../y", typ: tar.TypeSymlink}}},
		{"hard link out", []entry{{name: "h", link: "../x", typ: tar.TypeLink}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			parent := t.TempDir()
			dir := filepath.Join(parent, "job")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			err := process.Unpack(bytes.NewReader(archive(t, tc.entries...)), dir)
			if !errors.Is(err, job.ErrInvalid) {
				t.Errorf("Unpack: got %v, want job.ErrInvalid", err)
			}
			assertInside(t, parent, dir)
		})
	}
}

// TestUnpackThroughSymlink checks that a symlink planted by an earlier entry
// cannot be written through, even when it points inside at first sight.
func TestUnpackThroughSymlink(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	dir := filepath.Join(parent, "job")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The first link is fine; the second tries to redirect a directory outside.
	_ = process.Unpack(bytes.NewReader(archive(t,
		entry{name: "a/b", link: "..", typ: tar.TypeSymlink},
		entry{name: "a/b/c", link: "..", typ: tar.TypeSymlink},
		entry{name: "a/b/c/evil", body: "x"},
	)), dir)
	assertInside(t, parent, dir)
	assertLinksInside(t, dir)
}

// assertInside fails when anything but dir was created in parent.
func assertInside(t *testing.T, parent, dir string) {
	t.Helper()
	ents, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if filepath.Join(parent, e.Name()) != dir {
			t.Errorf("entry escaped the job directory: %s", e.Name())
		}
	}
}

func FuzzUnpack(f *testing.F) {
	f.Add(archive(f, entry{name: "a/b.txt", body: "x"}))
	f.Add(archive(f, entry{name: "l", link: "../x", typ: tar.TypeSymlink}))
	f.Add(archive(f, entry{name: "d/", typ: tar.TypeDir}, entry{name: "d/l", link: "..", typ: tar.TypeSymlink}, entry{name: "d/l/x", body: "y"}))
	f.Add([]byte("not gzip"))
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		dir := filepath.Join(parent, "job")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		_ = process.Unpack(bytes.NewReader(data), dir)
		assertInside(t, parent, dir)
		assertLinksInside(t, dir)
	})
}

// assertLinksInside fails when a symlink under dir resolves outside it.
func assertLinksInside(t *testing.T, dir string) {
	t.Helper()
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.Type()&os.ModeSymlink == 0 {
			return nil
		}
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return nil // dangling: it points at nothing, inside or out
		}
		if rel, err := filepath.Rel(dir, real); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			target, _ := os.Readlink(p)
			t.Errorf("symlink %s points outside: %q", p, target)
		}
		return nil
	})
}

func TestReadLines(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("y", 2*process.MaxLine+10)
	exact := strings.Repeat("z", process.MaxLine)
	in := "a\r\n\nb\n" + long + "\n" + exact + "\nlast"
	var got []string
	if err := process.ReadLines(strings.NewReader(in), func(l string) { got = append(got, l) }); err != nil {
		t.Fatalf("ReadLines: %v", err)
	}
	want := []string{"a", "", "b", long[:process.MaxLine], long[process.MaxLine : 2*process.MaxLine], long[2*process.MaxLine:], exact, "last"}
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d: got %d bytes %.20q, want %d bytes %.20q", i, len(got[i]), got[i], len(want[i]), want[i])
		}
	}
}

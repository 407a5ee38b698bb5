package sagemaker

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"
)

// tarBuilder writes a tar to be copied into a container at "/", making each
// parent folder once.
type tarBuilder struct {
	tw   *tar.Writer
	dirs map[string]bool
	now  time.Time
}

func newTarBuilder(w io.Writer) *tarBuilder {
	return &tarBuilder{tw: tar.NewWriter(w), dirs: map[string]bool{}, now: time.Now()}
}

// dir adds a folder and its parents; p is absolute.
func (b *tarBuilder) dir(p string) error {
	p = strings.Trim(path.Clean(p), "/")
	if p == "" || p == "." || b.dirs[p] {
		return nil
	}
	if err := b.dir(path.Dir(p)); err != nil {
		return err
	}
	b.dirs[p] = true
	return b.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: p + "/", Mode: 0o777, ModTime: b.now})
}

// file adds a file of size bytes read from r at the absolute path p.
func (b *tarBuilder) file(p string, r io.Reader, size int64) error {
	p = strings.Trim(path.Clean(p), "/")
	if err := b.dir(path.Dir(p)); err != nil {
		return err
	}
	if err := b.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: 0o666, Size: size, ModTime: b.now}); err != nil {
		return err
	}
	_, err := io.CopyN(b.tw, r, size)
	return err
}

func (b *tarBuilder) json(p string, v any) error {
	body, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return b.file(p, strings.NewReader(string(body)), int64(len(body)))
}

func (b *tarBuilder) close() error { return b.tw.Close() }

// containerFiles reads the tar that CopyFromContainer returns for a folder
// (entries named "<folder>/...") and calls f for each regular file with its
// path relative to that folder.
func containerFiles(rc io.Reader, f func(rel string, hdr *tar.Header, r io.Reader) error) error {
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading container archive: %w", err)
		}
		_, rel, ok := strings.Cut(hdr.Name, "/")
		if !ok || rel == "" || hdr.Typeflag != tar.TypeReg {
			continue
		}
		if err := f(rel, hdr, tr); err != nil {
			return err
		}
	}
}

// gzipFolder turns a folder archive from CopyFromContainer into a gzipped
// tar of its contents (no leading folder name, as SageMaker's model.tar.gz),
// written to a temporary file. It returns the file, rewound, its size and how
// many files it holds; the caller removes it.
func gzipFolder(rc io.Reader) (*os.File, int64, int, error) {
	tmp, err := os.CreateTemp("", "localaws-artifact-*.tar.gz")
	if err != nil {
		return nil, 0, 0, fmt.Errorf("creating artifact file: %w", err)
	}
	fail := func(err error) (*os.File, int64, int, error) {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, 0, 0, err
	}
	zw := gzip.NewWriter(tmp)
	tw := tar.NewWriter(zw)
	n := 0
	// Folders come through too, so that an empty folder in the model survives.
	tr := tar.NewReader(rc)
	for rc != nil {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fail(fmt.Errorf("reading container archive: %w", err))
		}
		_, rel, ok := strings.Cut(hdr.Name, "/")
		if !ok || rel == "" {
			continue
		}
		h := *hdr
		h.Name = rel
		if err := tw.WriteHeader(&h); err != nil {
			return fail(fmt.Errorf("writing artifact: %w", err))
		}
		if hdr.Typeflag == tar.TypeReg {
			n++
			if _, err := io.Copy(tw, tr); err != nil {
				return fail(fmt.Errorf("writing artifact: %w", err))
			}
		}
	}
	if err := tw.Close(); err != nil {
		return fail(fmt.Errorf("writing artifact: %w", err))
	}
	if err := zw.Close(); err != nil {
		return fail(fmt.Errorf("writing artifact: %w", err))
	}
	size, err := tmp.Seek(0, io.SeekCurrent)
	if err != nil {
		return fail(err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return fail(err)
	}
	return tmp, size, n, nil
}

// readFailure calls f with the single file that CopyFromContainer returns
// for a file path.
func readFailure(rc io.Reader, f func(io.Reader) error) error {
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading container archive: %w", err)
		}
		if hdr.Typeflag == tar.TypeReg {
			return f(tr)
		}
	}
}

// Package source packs a job's local code directory into the gzipped
// tarball that travels with the job. The tarball is deterministic: the same
// files give the same bytes, so its digest names the code.
package source

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/slipway-ml/slipway/internal/job"
)

// skipped names are never packed.
var skipped = []string{".git", ".hg", ".svn", "__pycache__", ".venv", "node_modules"}

// Pack returns the gzipped tarball of dir, refusing more than limit bytes.
// Paths that dir's .dockerignore (else its .gitignore files) name are left out
// (see LoadIgnore), as are version-control and cache folders. Symlinks are
// kept as links when they point inside dir and refused when they point
// outside it.
func Pack(dir string, limit int64) ([]byte, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: --dir: %v", job.ErrInvalid, err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("%w: --dir %s: not a directory", job.ErrInvalid, dir)
	}
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	ignore, err := LoadIgnore(root)
	if err != nil {
		return nil, fmt.Errorf("packing --dir %s: %w", dir, err)
	}
	var paths []string
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		if slices.Contains(skipped, d.Name()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if ignore.Match(rel, d.IsDir()) {
			if d.IsDir() && ignore.prunes() {
				return filepath.SkipDir
			}
			return nil
		}
		paths = append(paths, p)
		if d.IsDir() {
			return ignore.enter(root, rel)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading --dir %s: %w", dir, err)
	}
	slices.Sort(paths)

	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	epoch := time.Unix(0, 0).UTC()
	for _, p := range paths {
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return nil, err
		}
		rel = filepath.ToSlash(rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return nil, err
		}
		h := &tar.Header{Name: rel, ModTime: epoch, Mode: int64(fi.Mode().Perm()), Format: tar.FormatPAX}
		switch {
		case fi.IsDir():
			h.Typeflag, h.Name = tar.TypeDir, rel+"/"
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return nil, err
			}
			if target, err = relativeLink(root, p, target); err != nil {
				return nil, err
			}
			h.Typeflag, h.Linkname = tar.TypeSymlink, target
		case fi.Mode().IsRegular():
			h.Typeflag, h.Size = tar.TypeReg, fi.Size()
		default:
			continue // sockets, devices, fifos: not code
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if err := copyFile(tw, p); err != nil {
				return nil, err
			}
		}
		if int64(buf.Len()) > limit {
			return nil, fmt.Errorf("%w: --dir %s: the packed code passes the limit of %d MiB; leave data out (add it to .dockerignore) and read it from storage instead", job.ErrInvalid, dir, limit>>20)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	if int64(buf.Len()) > limit {
		return nil, fmt.Errorf("%w: --dir %s: the packed code passes the limit of %d MiB", job.ErrInvalid, dir, limit>>20)
	}
	return buf.Bytes(), nil
}

// relativeLink returns the target of the symlink at p relative to its own
// directory, refusing one that leaves root: the code must stand on its own.
func relativeLink(root, p, target string) (string, error) {
	abs := target
	if !filepath.IsAbs(target) {
		abs = filepath.Join(filepath.Dir(p), target)
	}
	if rel, err := filepath.Rel(root, abs); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("%w: --dir: symlink %s points outside the directory (%s)", job.ErrInvalid, p, target)
	}
	rel, err := filepath.Rel(filepath.Dir(p), abs)
	return filepath.ToSlash(rel), err
}

func copyFile(w io.Writer, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

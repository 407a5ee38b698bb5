package process

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/runner"
)

// RunConfigFile is the name of the run config file in a job's directory.
const RunConfigFile = "run-config.json"

// RunConfig returns the job's run config as compact JSON; "{}" when it has none.
func RunConfig(spec job.Spec) ([]byte, error) {
	if len(spec.RunConfig) == 0 {
		return []byte("{}"), nil
	}
	var v map[string]any
	if err := json.Unmarshal(spec.RunConfig, &v); err != nil {
		return nil, fmt.Errorf("%w: spec.run_config: want a JSON object: %v", job.ErrInvalid, err)
	}
	// Compact rather than re-encode, so that numbers keep their spelling.
	var buf bytes.Buffer
	if err := json.Compact(&buf, spec.RunConfig); err != nil {
		return nil, fmt.Errorf("%w: spec.run_config: %v", job.ErrInvalid, err)
	}
	return buf.Bytes(), nil
}

// PrepareDir makes dir the job's directory: it creates it, extracts the
// task's code into it when there is any, and writes the run config there as
// RunConfigFile.
func PrepareDir(ctx context.Context, dir string, t runner.Task) error {
	cfg, err := RunConfig(t.Job.Spec)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating job directory: %w", err)
	}
	if t.Code != nil {
		rc, err := t.Code(ctx)
		if err != nil {
			return fmt.Errorf("opening the job's code: %w", err)
		}
		err = Unpack(rc, dir)
		rc.Close()
		if err != nil {
			return fmt.Errorf("extracting the job's code: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, RunConfigFile), cfg, 0o644); err != nil {
		return fmt.Errorf("writing the run config: %w", err)
	}
	return nil
}

// Unpack extracts the gzipped tarball r into dir. It refuses any entry that
// would land outside dir: absolute paths, "..", links that point outside, and
// entries reached through a symlink; it keeps regular files, directories and
// symlinks, and skips other entry types (devices, fifos).
func Unpack(r io.Reader, dir string) error {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("reading gzip: %w", err)
	}
	defer zr.Close()
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("resolving %s: %w", dir, err)
	}
	root, err := os.OpenRoot(realDir)
	if err != nil {
		return fmt.Errorf("opening %s: %w", dir, err)
	}
	defer root.Close()
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading tar: %w", err)
		}
		name, err := entryName(hdr.Name)
		if err != nil {
			return err
		}
		if name == "." {
			continue
		}
		if err := unpackEntry(root, realDir, name, hdr, tr); err != nil {
			return fmt.Errorf("extracting %q: %w", hdr.Name, err)
		}
	}
}

// entryName returns the cleaned relative path of a tar entry, or an error
// when it is absolute or climbs out with "..".
func entryName(name string) (string, error) {
	name = strings.ReplaceAll(name, "\\", "/")
	if name == "" || path.IsAbs(name) || strings.Contains(name, "\x00") {
		return "", fmt.Errorf("%w: code archive entry %q: want a relative path", job.ErrInvalid, name)
	}
	clean := path.Clean(name)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("%w: code archive entry %q: escapes the job directory", job.ErrInvalid, name)
	}
	return clean, nil
}

// unpackEntry writes one entry through root, which refuses to follow any
// path (or symlink already extracted) that leaves the directory.
func unpackEntry(root *os.Root, realDir, name string, hdr *tar.Header, r io.Reader) error {
	mode := os.FileMode(hdr.Mode).Perm() | 0o600 // the agent must be able to clean up
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := root.MkdirAll(name, mode|0o700); err != nil {
			return err
		}
		return nil
	case tar.TypeReg, tar.TypeRegA: //nolint:staticcheck // old archives still use TypeRegA
		if err := mkParent(root, name); err != nil {
			return err
		}
		// Replace rather than write through whatever is there: it may be a symlink.
		if err := root.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, r)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	case tar.TypeSymlink:
		if err := mkParent(root, name); err != nil {
			return err
		}
		if err := checkSymlink(realDir, name, hdr.Linkname); err != nil {
			return err
		}
		if err := root.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return root.Symlink(hdr.Linkname, name)
	case tar.TypeLink:
		target, err := entryName(hdr.Linkname)
		if err != nil {
			return err
		}
		if err := mkParent(root, name); err != nil {
			return err
		}
		if err := root.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return root.Link(target, name)
	default:
		return nil // devices, fifos and the like have no place in a job's code
	}
}

// checkSymlink refuses a symlink at name (relative to realDir, already
// created parents included) whose target leads outside realDir. Only leading
// ".." are allowed in the target, so that walking it lexically from the
// parent's real path is what the kernel will do.
func checkSymlink(realDir, name, target string) error {
	bad := fmt.Errorf("%w: symlink %s to %q points outside the job directory", job.ErrInvalid, name, target)
	if target == "" || path.IsAbs(target) || strings.Contains(target, "\x00") {
		return bad
	}
	descended := false
	for _, part := range strings.Split(target, "/") {
		switch part {
		case "..":
			if descended {
				return bad
			}
		case "", ".":
		default:
			descended = true
		}
	}
	parent, err := filepath.EvalSymlinks(filepath.Join(realDir, filepath.FromSlash(path.Dir(name))))
	if err != nil {
		return fmt.Errorf("resolving the parent of %s: %w", name, err)
	}
	rel, err := filepath.Rel(realDir, filepath.Join(parent, filepath.FromSlash(target)))
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") || filepath.IsAbs(rel) {
		return bad
	}
	return nil
}

func mkParent(root *os.Root, name string) error {
	if dir := path.Dir(name); dir != "." {
		return root.MkdirAll(dir, 0o755)
	}
	return nil
}

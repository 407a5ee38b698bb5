package build

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/source"
)

var errInvalid = job.ErrInvalid

// File is one entry of a normalised build context.
type File struct {
	Name     string // slash-separated, relative, no leading "./"
	Type     byte   // tar.TypeReg, tar.TypeDir or tar.TypeSymlink
	Mode     int64  // permission bits
	Linkname string
	Body     []byte
}

// Context is a normalised build context: its files sorted by name, owners
// and times dropped, the context's .dockerignore applied.
type Context struct {
	Files []File
}

// ReadContext reads a tar, gzipped or not, into a normalised Context.
func ReadContext(b []byte) (*Context, error) {
	var r io.Reader = bytes.NewReader(b)
	br := bufio.NewReader(r)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%w: build context: %v", errInvalid, err)
		}
		r = zr
	} else {
		r = br
	}
	tr := tar.NewReader(r)
	byName := map[string]File{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: build context: %v", errInvalid, err)
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "/"))
		if name == "." || name == ".." || strings.HasPrefix(name, "../") {
			continue
		}
		f := File{Name: name, Mode: h.Mode & 0o777, Linkname: h.Linkname}
		switch h.Typeflag {
		case tar.TypeReg, tar.TypeRegA:
			f.Type = tar.TypeReg
			if f.Body, err = io.ReadAll(tr); err != nil {
				return nil, fmt.Errorf("%w: build context: %s: %v", errInvalid, name, err)
			}
		case tar.TypeDir:
			f.Type = tar.TypeDir
		case tar.TypeSymlink:
			f.Type = tar.TypeSymlink
		default:
			continue
		}
		byName[name] = f
	}
	c := &Context{}
	for _, f := range byName {
		c.Files = append(c.Files, f)
	}
	slices.SortFunc(c.Files, func(a, b File) int { return strings.Compare(a.Name, b.Name) })
	if di := c.Get(".dockerignore"); di != nil {
		ig, err := source.ParseDockerignore(di.Body)
		if err != nil {
			return nil, err
		}
		c.Files = slices.DeleteFunc(c.Files, func(f File) bool { return ig.Match(f.Name, f.Type == tar.TypeDir) })
	}
	return c, nil
}

// Get returns the regular file called name, or nil.
func (c *Context) Get(name string) *File {
	i, ok := slices.BinarySearchFunc(c.Files, name, func(f File, n string) int { return strings.Compare(f.Name, n) })
	if !ok || c.Files[i].Type != tar.TypeReg {
		return nil
	}
	return &c.Files[i]
}

// Digest is the SHA-256 of the context's canonical listing: every file's
// name, type, mode, link target and content digest. It does not depend on
// compression, entry order, owners or times.
func (c *Context) Digest() string {
	h := sha256.New()
	for _, f := range c.Files {
		body := sha256.Sum256(f.Body)
		fmt.Fprintf(h, "%q %c %o %q %x\n", f.Name, f.Type, f.Mode, f.Linkname, body)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Tar writes the context as an uncompressed tar, with extra files (the
// generated Dockerfile) added or replaced.
func (c *Context) Tar(extra ...File) ([]byte, error) {
	files := slices.Clone(c.Files)
	for _, e := range extra {
		files = slices.DeleteFunc(files, func(f File) bool { return f.Name == e.Name })
		files = append(files, e)
	}
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Name, b.Name) })
	var buf bytes.Buffer
	if err := writeTar(&buf, files); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// epoch is the time of every entry a build writes, so that the same code
// gives the same bytes.
var epoch = time.Unix(0, 0).UTC()

func writeTar(w io.Writer, files []File) error {
	tw := tar.NewWriter(w)
	for _, f := range files {
		h := &tar.Header{Name: f.Name, Typeflag: f.Type, Mode: f.Mode, ModTime: epoch, Linkname: f.Linkname, Format: tar.FormatPAX}
		switch f.Type {
		case tar.TypeDir:
			h.Name = strings.TrimSuffix(f.Name, "/") + "/"
		case tar.TypeReg:
			h.Size = int64(len(f.Body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("writing tar: %w", err)
		}
		if f.Type == tar.TypeReg {
			if _, err := tw.Write(f.Body); err != nil {
				return fmt.Errorf("writing tar: %w", err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("writing tar: %w", err)
	}
	return nil
}

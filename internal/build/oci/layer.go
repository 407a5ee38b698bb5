package oci

import (
	"archive/tar"
	"fmt"
	"io"
	"time"

	"github.com/slipway-ml/slipway/internal/build"
)

// epoch is the time of every entry and history record the builder writes,
// so that the same code over the same base gives the same image digest.
var epoch = time.Unix(0, 0).UTC()

// writeLayer writes files as an uncompressed layer tar owned by root.
func writeLayer(w io.Writer, files []build.File) error {
	tw := tar.NewWriter(w)
	for _, f := range files {
		h := &tar.Header{Name: f.Name, Typeflag: f.Type, Mode: f.Mode, ModTime: epoch, Linkname: f.Linkname, Format: tar.FormatPAX}
		switch f.Type {
		case tar.TypeDir:
			h.Name += "/"
		case tar.TypeReg:
			h.Size = int64(len(f.Body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("writing the code layer: %w", err)
		}
		if f.Type == tar.TypeReg {
			if _, err := tw.Write(f.Body); err != nil {
				return fmt.Errorf("writing the code layer: %w", err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("writing the code layer: %w", err)
	}
	return nil
}

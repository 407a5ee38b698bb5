// Package s3 is the local S3 service: gofakes3 speaking the REST-XML protocol
// (path-style), over its afero backend rooted in a folder on disk, so that
// buckets and objects are plain files a user can look at and that survive a
// restart. It also gives the training side direct access to objects, without
// going through HTTP.
package s3

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3afero"
	"github.com/spf13/afero"
)

// Service is the S3 endpoint and the object store behind it.
type Service struct {
	backend gofakes3.Backend
	handler http.Handler
}

// ErrNotFound is returned by the direct-access methods for a missing bucket
// or key.
var ErrNotFound = errors.New("no such bucket or key")

// New returns a service that keeps its buckets under dir.
func New(dir string, log *slog.Logger) (*Service, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating s3 dir: %w", err)
	}
	fs := afero.NewBasePathFs(afero.NewOsFs(), dir)
	backend, err := s3afero.MultiBucket(fs)
	if err != nil {
		return nil, fmt.Errorf("opening s3 backend: %w", err)
	}
	opts := []gofakes3.Option{gofakes3.WithoutVersioning(), gofakes3.WithHostBucket(false)}
	if log != nil {
		opts = append(opts, gofakes3.WithLogger(slogLogger{log}))
	}
	return &Service{backend: backend, handler: gofakes3.New(backend, opts...).Server()}, nil
}

// ServeHTTP serves the S3 REST API, path-style.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// EnsureBucket creates bucket unless it exists.
func (s *Service) EnsureBucket(bucket string) error {
	ok, err := s.backend.BucketExists(bucket)
	if err != nil {
		return fmt.Errorf("checking bucket %s: %w", bucket, err)
	}
	if ok {
		return nil
	}
	if err := s.backend.CreateBucket(bucket); err != nil && !gofakes3.HasErrorCode(err, gofakes3.ErrBucketAlreadyExists) {
		return fmt.Errorf("creating bucket %s: %w", bucket, err)
	}
	return nil
}

// Get opens an object; the caller closes it.
func (s *Service) Get(bucket, key string) (io.ReadCloser, int64, error) {
	obj, err := s.backend.GetObject(bucket, key, nil)
	if err != nil {
		return nil, 0, wrap(fmt.Sprintf("getting s3://%s/%s", bucket, key), err)
	}
	return obj.Contents, obj.Size, nil
}

// Put writes an object of size bytes read from r. The bucket must exist.
func (s *Service) Put(bucket, key string, r io.Reader, size int64) error {
	// gofakes3 keeps HTTP headers as metadata; the AWS CLI needs Last-Modified.
	meta := map[string]string{"Last-Modified": time.Now().UTC().Format(http.TimeFormat), "Content-Type": "application/octet-stream"}
	if _, err := s.backend.PutObject(bucket, key, meta, r, size, nil); err != nil {
		return wrap(fmt.Sprintf("putting s3://%s/%s", bucket, key), err)
	}
	return nil
}

// List returns the keys under prefix, in order.
func (s *Service) List(bucket, prefix string) ([]string, error) {
	var keys []string
	page := gofakes3.ListBucketPage{}
	p := gofakes3.NewPrefix(&prefix, nil)
	for {
		objs, err := s.backend.ListBucket(bucket, &p, page)
		if err != nil {
			return nil, wrap(fmt.Sprintf("listing s3://%s/%s", bucket, prefix), err)
		}
		for _, c := range objs.Contents {
			keys = append(keys, c.Key)
		}
		if !objs.IsTruncated || objs.NextMarker == "" {
			return keys, nil
		}
		page = gofakes3.ListBucketPage{Marker: objs.NextMarker, HasMarker: true}
	}
}

func wrap(what string, err error) error {
	if gofakes3.HasErrorCode(err, gofakes3.ErrNoSuchBucket) || gofakes3.HasErrorCode(err, gofakes3.ErrNoSuchKey) {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// ParseURI splits s3://bucket/key into its bucket and key.
func ParseURI(uri string) (bucket, key string, err error) {
	rest, ok := strings.CutPrefix(uri, "s3://")
	if !ok {
		rest, ok = strings.CutPrefix(uri, "https://s3.amazonaws.com/")
	}
	if !ok {
		return "", "", fmt.Errorf("parsing S3 URI %q: want s3://bucket/key", uri)
	}
	bucket, key, _ = strings.Cut(rest, "/")
	if bucket == "" {
		return "", "", fmt.Errorf("parsing S3 URI %q: no bucket", uri)
	}
	return bucket, key, nil
}

type slogLogger struct{ log *slog.Logger }

func (l slogLogger) Print(level gofakes3.LogLevel, v ...any) {
	msg := fmt.Sprint(v...)
	switch level {
	case gofakes3.LogErr:
		l.log.Warn("s3", "msg", msg)
	default:
		l.log.Debug("s3", "level", string(level), "msg", msg)
	}
}

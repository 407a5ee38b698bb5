// Package ecr is the local ECR service: the repository and image calls of
// the awsJson1_1 API in front of an embedded OCI registry
// (go-containerregistry's), served on the endpoint's own port under /v2/, so
// that `docker login` and `docker push` to a repositoryUri work as on AWS.
// Blobs live on disk; manifests are recorded on disk as they are pushed and
// replayed into the registry when the endpoint starts again.
package ecr

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

// Service is the ECR API and the registry behind it.
type Service struct {
	dir     string
	region  string
	account string
	host    func() string // host:port of the registry as clients reach it
	log     *slog.Logger
	reg     http.Handler

	mu    sync.Mutex
	repos map[string]*repo
}

type repo struct {
	Name       string               `json:"name"`
	CreatedAt  time.Time            `json:"createdAt"`
	Mutability string               `json:"imageTagMutability"`
	images     map[string]*imageRec // by digest
}

// imageRec is a pushed manifest, as kept on disk.
type imageRec struct {
	Digest    string    `json:"digest"`
	MediaType string    `json:"mediaType"`
	Tags      []string  `json:"tags"`
	PushedAt  time.Time `json:"pushedAt"`
	Body      []byte    `json:"body"`
}

// New opens the registry and the repositories kept under dir. host names the
// registry as clients reach it (127.0.0.1:PORT), known once the endpoint
// listens.
func New(dir, region, account string, host func() string, logger *slog.Logger) (*Service, error) {
	if err := os.MkdirAll(filepath.Join(dir, "blobs"), 0o755); err != nil {
		return nil, fmt.Errorf("creating registry dir: %w", err)
	}
	s := &Service{dir: dir, region: region, account: account, host: host, log: logger, repos: map[string]*repo{}}
	s.reg = registry.New(registry.WithBlobHandler(registry.NewDiskBlobHandler(filepath.Join(dir, "blobs"))),
		registry.Logger(log.New(io.Discard, "", 0)))
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Service) reposFile() string { return filepath.Join(s.dir, "repositories.json") }

func (s *Service) imagesFile(name string) string {
	return filepath.Join(s.dir, "images", url.PathEscape(name)+".json")
}

func (s *Service) load() error {
	b, err := os.ReadFile(s.reposFile())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading repositories: %w", err)
	}
	var repos []*repo
	if err := json.Unmarshal(b, &repos); err != nil {
		return fmt.Errorf("decoding repositories: %w", err)
	}
	for _, r := range repos {
		r.images = map[string]*imageRec{}
		s.repos[r.Name] = r
		b, err := os.ReadFile(s.imagesFile(r.Name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading images of %s: %w", r.Name, err)
		}
		var imgs []*imageRec
		if err := json.Unmarshal(b, &imgs); err != nil {
			return fmt.Errorf("decoding images of %s: %w", r.Name, err)
		}
		for _, img := range imgs {
			r.images[img.Digest] = img
			refs := append([]string{img.Digest}, img.Tags...)
			for _, ref := range refs {
				if err := s.replay(r.Name, ref, img); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// replay puts a recorded manifest back into the in-memory registry.
func (s *Service) replay(name, ref string, img *imageRec) error {
	req := httptest.NewRequest(http.MethodPut, "/v2/"+name+"/manifests/"+ref, bytes.NewReader(img.Body))
	req.Header.Set("Content-Type", img.MediaType)
	rec := httptest.NewRecorder()
	s.reg.ServeHTTP(rec, req)
	if rec.Code != http.StatusCreated {
		return fmt.Errorf("restoring manifest %s:%s: registry answered %d %s", name, ref, rec.Code, rec.Body)
	}
	return nil
}

// saveLocked writes the repositories and one repository's images.
func (s *Service) saveLocked(name string) error {
	var repos []*repo
	for _, r := range s.repos {
		repos = append(repos, r)
	}
	if err := writeJSON(s.reposFile(), repos); err != nil {
		return err
	}
	r, ok := s.repos[name]
	if !ok {
		return nil
	}
	var imgs []*imageRec
	for _, img := range r.images {
		imgs = append(imgs, img)
	}
	return writeJSON(s.imagesFile(name), imgs)
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", filepath.Base(path), err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("writing %s: %w", filepath.Base(path), err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", filepath.Base(path), err)
	}
	return os.Rename(tmp, path)
}

var routePattern = regexp.MustCompile(`^/v2/(.+?)/(blobs|manifests|tags)/(.*)$`)

// Registry serves the OCI distribution API under /v2/. Pushing to a
// repository that was not created answers NAME_UNKNOWN, as ECR does.
func (s *Service) Registry() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := routePattern.FindStringSubmatch(r.URL.Path)
		if m == nil {
			s.reg.ServeHTTP(w, r)
			return
		}
		name, kind, ref := m[1], m[2], m[3]
		s.mu.Lock()
		_, known := s.repos[name]
		s.mu.Unlock()
		if !known {
			writeRegistryError(w, name, s.account)
			return
		}
		if kind != "manifests" || r.Method != http.MethodPut {
			s.reg.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := &statusRecorder{ResponseWriter: w}
		s.reg.ServeHTTP(rec, r)
		if rec.status == http.StatusCreated {
			s.recordPush(name, ref, r.Header.Get("Content-Type"), rec.Header().Get("Docker-Content-Digest"), body)
		}
	})
}

func writeRegistryError(w http.ResponseWriter, name, account string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	msg := fmt.Sprintf("The repository with name '%s' does not exist in the registry with id '%s'", name, account)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": "NAME_UNKNOWN", "message": msg}}})
}

// recordPush remembers a manifest pushed under ref (a tag or a digest).
func (s *Service) recordPush(name, ref, mediaType, digest string, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.repos[name]
	if !ok || digest == "" {
		return
	}
	img, ok := r.images[digest]
	if !ok {
		img = &imageRec{Digest: digest, MediaType: mediaType, Body: body}
		r.images[digest] = img
	}
	img.PushedAt = time.Now().UTC()
	if !strings.HasPrefix(ref, "sha256:") {
		for _, other := range r.images {
			other.Tags = remove(other.Tags, ref)
		}
		img.Tags = append(img.Tags, ref)
	}
	if err := s.saveLocked(name); err != nil {
		s.log.Warn("recording pushed manifest", "repo", name, "err", err)
	}
}

func remove(tags []string, tag string) []string {
	out := tags[:0]
	for _, t := range tags {
		if t != tag {
			out = append(out, t)
		}
	}
	return out
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

var ecrURIPattern = regexp.MustCompile(`^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/(.+)$`)

// Resolve maps a TrainingImage to what the engine pulls: an ECR URI in the
// AWS form (<account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag>) or one
// naming the local registry becomes a local registry reference, always
// pulled so that a pushed tag wins over a stale copy; anything else is
// left alone and pulled only when the engine lacks it.
func (s *Service) Resolve(img string) (ref string, pullAlways bool) {
	host := s.host()
	if m := ecrURIPattern.FindStringSubmatch(img); m != nil && host != "" {
		return host + "/" + m[2], true
	}
	if host != "" && strings.HasPrefix(img, host+"/") {
		return img, true
	}
	return img, false
}

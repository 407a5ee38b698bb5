package ecr

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func newService(t *testing.T, dir string) *Service {
	t.Helper()
	s, err := New(dir, "us-east-1", "000000000000", func() string { return "127.0.0.1:5000" }, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func call(t *testing.T, h http.Handler, method, path, ctype string, body []byte) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// TestManifestsSurviveRestart pushes an image and reopens the service on the
// same folder: the tag still resolves in the registry and in DescribeImages.
func TestManifestsSurviveRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := newService(t, dir)
	if rec := call(t, s.Handler("CreateRepository", nil), "POST", "/", "", []byte(`{"repositoryName":"r1"}`)); rec.Code != 200 {
		t.Fatalf("CreateRepository: got %d %s", rec.Code, rec.Body)
	}
	config := []byte(`{"architecture":"amd64","os":"linux"}`)
	digest := fmt.Sprintf("sha256:%x", sha256.Sum256(config))
	if rec := call(t, s.Registry(), "POST", "/v2/r1/blobs/uploads/?digest="+digest, "", config); rec.Code != http.StatusCreated {
		t.Fatalf("blob upload: got %d %s", rec.Code, rec.Body)
	}
	manifest := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":` +
		fmt.Sprint(len(config)) + `,"digest":"` + digest + `"},"layers":[]}`)
	if rec := call(t, s.Registry(), "PUT", "/v2/r1/manifests/v1", "application/vnd.oci.image.manifest.v1+json", manifest); rec.Code != http.StatusCreated {
		t.Fatalf("manifest put: got %d %s", rec.Code, rec.Body)
	}

	s = newService(t, dir)
	rec := call(t, s.Registry(), "GET", "/v2/r1/manifests/v1", "", nil)
	if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), manifest) {
		t.Fatalf("manifest after restart: got %d %s, want 200 with the pushed manifest", rec.Code, rec.Body)
	}
	rec = call(t, s.Handler("DescribeImages", nil), "POST", "/", "", []byte(`{"repositoryName":"r1"}`))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"imageTags":["v1"]`) {
		t.Errorf("DescribeImages after restart: got %d %s, want v1", rec.Code, rec.Body)
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	s := newService(t, t.TempDir())
	cases := []struct {
		in, want string
		pull     bool
	}{
		{"123456789012.dkr.ecr.us-east-2.amazonaws.com/team/model:v1", "127.0.0.1:5000/team/model:v1", true},
		{"127.0.0.1:5000/team/model:v1", "127.0.0.1:5000/team/model:v1", true},
		{"slipway/busybox:latest", "slipway/busybox:latest", false},
	}
	for _, tc := range cases {
		got, pull := s.Resolve(tc.in)
		if got != tc.want || pull != tc.pull {
			t.Errorf("Resolve(%s): got %s %v, want %s %v", tc.in, got, pull, tc.want, tc.pull)
		}
	}
}

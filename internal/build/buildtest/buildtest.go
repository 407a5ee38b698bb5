// Package buildtest gives the builders' tests what they share: a real OCI
// registry on httptest that counts the blobs pushed to it, a busybox base
// image pushed into it, build contexts made from file maps, and a way to
// run a built image on the local Docker engine.
package buildtest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/slipway-ml/slipway/internal/baseimage"
)

// Registry is a registry for one test.
type Registry struct {
	Host string // 127.0.0.1:PORT

	mu      sync.Mutex
	uploads []string // digests of the blobs uploaded, in order
}

// NewRegistry serves go-containerregistry's registry until the test ends.
func NewRegistry(t testing.TB) *Registry {
	t.Helper()
	r := &Registry{}
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		// A PUT to an upload URL with ?digest= completes one blob upload.
		if req.Method == http.MethodPut && strings.Contains(req.URL.Path, "/blobs/uploads/") {
			r.mu.Lock()
			r.uploads = append(r.uploads, req.URL.Query().Get("digest"))
			r.mu.Unlock()
		}
		reg.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	r.Host = strings.TrimPrefix(srv.URL, "http://")
	return r
}

// Uploads returns the digests of the blobs uploaded so far.
func (r *Registry) Uploads() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.uploads)
}

// PushBase pushes a busybox image (linux/amd64) to repo in the registry and
// returns its reference by tag.
func (r *Registry) PushBase(t testing.TB, repo string) string {
	t.Helper()
	img := BusyboxImage(t)
	ref := r.Host + "/" + repo + ":1"
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatalf("pushing base image: %v", err)
	}
	return ref
}

// BusyboxImage is a one-layer busybox image with PATH set, built from the
// host's static busybox.
func BusyboxImage(t testing.TB) v1.Image {
	t.Helper()
	rootfs, err := baseimage.BusyboxRootfs(baseimage.BusyboxPath)
	if err != nil {
		t.Fatalf("making busybox rootfs (install busybox-static): %v", err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(rootfs)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Env = []string{"PATH=/bin:/usr/bin:/sbin:/usr/sbin"}
	cf.Config.Cmd = []string{"/bin/sh"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// Context returns a gzipped tar of files (name → body; a name ending in
// ".sh" is executable).
func Context(t testing.TB, files map[string]string) []byte {
	t.Helper()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, n := range names {
		mode := int64(0o644)
		if strings.HasSuffix(n, ".sh") {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: mode, Size: int64(len(files[n])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(files[n])); err != nil {
			t.Fatal(err)
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

// Label marks the containers these tests make.
const Label = "slipway.buildtest"

// Run pulls ref into the engine (unless pull is false: the image is local),
// runs it with cmd (nil: the image's own), and returns what it printed.
// The container and the pulled image are removed when the test ends.
func Run(t testing.TB, cli client.APIClient, ref string, pull bool, cmd ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if pull {
		rc, err := cli.ImagePull(ctx, ref, image.PullOptions{})
		if err != nil {
			t.Fatalf("pulling %s: %v", ref, err)
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			t.Fatalf("pulling %s: %v", ref, err)
		}
		t.Cleanup(func() { RemoveImages(cli, ref) })
	}
	c, err := cli.ContainerCreate(ctx, &container.Config{Image: ref, Cmd: cmd, Labels: map[string]string{Label: t.Name()}}, nil, nil, nil, "")
	if err != nil {
		t.Fatalf("creating a container of %s: %v", ref, err)
	}
	t.Cleanup(func() {
		_ = cli.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true})
	})
	if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		t.Fatalf("starting %s: %v", ref, err)
	}
	waitC, errC := cli.ContainerWait(ctx, c.ID, container.WaitConditionNotRunning)
	select {
	case w := <-waitC:
		if w.StatusCode != 0 {
			t.Errorf("container of %s exited %d", ref, w.StatusCode)
		}
	case err := <-errC:
		t.Fatalf("waiting for %s: %v", ref, err)
	}
	rc, err := cli.ContainerLogs(ctx, c.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatalf("reading logs: %v", err)
	}
	defer rc.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, rc); err != nil {
		t.Fatalf("reading logs: %v", err)
	}
	return out.String()
}

// RemoveImages removes from the engine every image one of whose tags or
// digests starts with one of the prefixes (a test registry's host, say).
func RemoveImages(cli client.APIClient, prefixes ...string) {
	ctx := context.Background()
	imgs, err := cli.ImageList(ctx, image.ListOptions{All: true})
	if err != nil {
		return
	}
	for _, img := range imgs {
		for _, ref := range slices.Concat(img.RepoTags, img.RepoDigests) {
			if slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(ref, p) }) {
				_, _ = cli.ImageRemove(ctx, img.ID, image.RemoveOptions{Force: true, PruneChildren: true})
				break
			}
		}
	}
}

// Lines collects log lines from a build, safe for concurrent use.
type Lines struct {
	mu    sync.Mutex
	lines []string
}

// Add is a build.Request.Log.
func (l *Lines) Add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, s)
}

// String returns the lines so far, one per line.
func (l *Lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// Sprint formats a list of digests for failure messages.
func Sprint(ds []string) string { return fmt.Sprintf("%d %v", len(ds), ds) }

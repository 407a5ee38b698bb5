package bench

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/slipway-ml/slipway/internal/baseimage"
	"github.com/slipway-ml/slipway/internal/build"
	"github.com/slipway-ml/slipway/internal/build/docker"
	"github.com/slipway-ml/slipway/internal/build/oci"
	regoci "github.com/slipway-ml/slipway/internal/registry/oci"
)

// countingRegistry is go-containerregistry's registry on loopback,
// counting the blobs uploaded to it and their bytes.
type countingRegistry struct {
	Host string
	srv  *http.Server

	mu    sync.Mutex
	blobs int
	bytes int64
}

func startRegistry() (*countingRegistry, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening: %w", err)
	}
	r := &countingRegistry{Host: ln.Addr().String()}
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	r.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if strings.Contains(req.URL.Path, "/blobs/uploads/") && req.Body != nil {
			req.Body = &countingBody{ReadCloser: req.Body, r: r}
			// A PUT with ?digest= completes one blob upload.
			if req.Method == http.MethodPut && req.URL.Query().Get("digest") != "" {
				r.mu.Lock()
				r.blobs++
				r.mu.Unlock()
			}
		}
		reg.ServeHTTP(w, req)
	})}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

type countingBody struct {
	io.ReadCloser
	r *countingRegistry
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.r.mu.Lock()
	b.r.bytes += int64(n)
	b.r.mu.Unlock()
	return n, err
}

// uploaded returns the blobs and bytes uploaded so far.
func (r *countingRegistry) uploaded() (int, int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.blobs, r.bytes
}

func (r *countingRegistry) Close() { _ = r.srv.Close() }

// pushBusybox pushes a one-layer busybox image to repo and returns its tag.
func (r *countingRegistry) pushBusybox(repo string) (string, error) {
	rootfs, err := baseimage.BusyboxRootfs(baseimage.BusyboxPath)
	if err != nil {
		return "", fmt.Errorf("making busybox rootfs (install busybox-static): %w", err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(rootfs)), nil })
	if err != nil {
		return "", err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return "", err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return "", err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Env = []string{"PATH=/bin:/usr/bin:/sbin:/usr/sbin"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return "", err
	}
	ref := r.Host + "/" + repo + ":1"
	tag, err := name.NewTag(ref)
	if err != nil {
		return "", err
	}
	if err := remote.Write(tag, img); err != nil {
		return "", fmt.Errorf("pushing the base image: %w", err)
	}
	return ref, nil
}

// Rebuild is what one builder's rebuild run saw.
type Rebuild struct {
	Builder string
	// Cold is the first build of the code; Unchanged are relaunches of the
	// same code, Changed builds after one file changed.
	Cold               time.Duration
	ColdBlobs          int
	Unchanged, Changed []time.Duration
	// UnchangedBlobs and UnchangedBytes are uploaded by every unchanged
	// relaunch together; ChangedBlobs and ChangedBytes per changed build.
	UnchangedBlobs int
	UnchangedBytes int64
	ChangedBlobs   []int
	ChangedBytes   []int64
	// CodeBytes is the size of the job's code, as gzipped tar.
	CodeBytes int
}

// benchCode is a job's code: a Dockerfile FROM base, a script, a data
// file of dataKB random KB, and version.txt, the file that changes.
func benchCode(base string, version int, data []byte) ([]byte, error) {
	files := map[string][]byte{
		"Dockerfile":  []byte("FROM " + base + "\nWORKDIR /app\nCOPY . /app\nENTRYPOINT [\"sh\", \"/app/train.sh\"]\n"),
		"train.sh":    []byte("echo training version $(cat /app/version.txt)\n"),
		"data.bin":    data,
		"version.txt": fmt.Appendf(nil, "%d\n", version),
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(files[n]); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// MeasureRebuild builds a job's code with builder b ("oci" or "docker")
// into a fresh local registry: once cold, unchanged times over (each must
// be skipped), then changed times with one file changed each time.
func MeasureRebuild(ctx context.Context, builder string, unchanged, changed int) (Rebuild, error) {
	out := Rebuild{Builder: builder}
	reg, err := startRegistry()
	if err != nil {
		return out, err
	}
	defer reg.Close()
	dst, err := regoci.New(regoci.Config{Repository: reg.Host + "/jobs/train"})
	if err != nil {
		return out, err
	}
	var (
		b    build.Builder
		base string
	)
	switch builder {
	case oci.Name:
		b = oci.New(oci.Config{})
		if base, err = reg.pushBusybox("base/busybox"); err != nil {
			return out, err
		}
	case docker.Name:
		cli, err := dockerClient(ctx)
		if err != nil {
			return out, err
		}
		defer cli.Close()
		defer removeImages(cli, reg.Host+"/")
		if base, err = baseimage.Ensure(ctx, cli); err != nil {
			return out, err
		}
		if b, err = docker.New(docker.Config{Client: cli}); err != nil {
			return out, err
		}
	default:
		return out, fmt.Errorf("unknown builder %q", builder)
	}
	data := make([]byte, 256<<10)
	rng := rand.NewChaCha8([32]byte{1})
	_, _ = rng.Read(data)

	run := func(version int, wantSkip bool) (time.Duration, int, int64, error) {
		code, err := benchCode(base, version, data)
		if err != nil {
			return 0, 0, 0, err
		}
		out.CodeBytes = len(code)
		blobs, n := reg.uploaded()
		start := time.Now()
		res, err := b.Build(ctx, build.Request{Context: code, Registry: dst})
		took := time.Since(start)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("building version %d with %s: %w", version, builder, err)
		}
		if res.Skipped != wantSkip {
			return 0, 0, 0, fmt.Errorf("building version %d with %s: skipped %t, want %t", version, builder, res.Skipped, wantSkip)
		}
		blobs2, n2 := reg.uploaded()
		return took, blobs2 - blobs, n2 - n, nil
	}
	if out.Cold, out.ColdBlobs, _, err = run(0, false); err != nil {
		return out, err
	}
	for range unchanged {
		took, blobs, n, err := run(0, true)
		if err != nil {
			return out, err
		}
		out.Unchanged = append(out.Unchanged, took)
		out.UnchangedBlobs += blobs
		out.UnchangedBytes += n
	}
	for v := 1; v <= changed; v++ {
		took, blobs, n, err := run(v, false)
		if err != nil {
			return out, err
		}
		out.Changed = append(out.Changed, took)
		out.ChangedBlobs = append(out.ChangedBlobs, blobs)
		out.ChangedBytes = append(out.ChangedBytes, n)
	}
	return out, nil
}

// removeImages removes the engine's images with a tag or digest starting
// with prefix: the ones this run built and pushed.
func removeImages(cli *client.Client, prefix string) {
	ctx := context.Background()
	imgs, err := cli.ImageList(ctx, image.ListOptions{All: true})
	if err != nil {
		return
	}
	for _, img := range imgs {
		if slices.ContainsFunc(slices.Concat(img.RepoTags, img.RepoDigests), func(r string) bool { return strings.HasPrefix(r, prefix) }) {
			_, _ = cli.ImageRemove(ctx, img.ID, image.RemoveOptions{Force: true, PruneChildren: true})
		}
	}
}

func rebuildMeasure(ctx context.Context, o Options) ([]Result, error) {
	unchanged, changed := 10, 3
	if o.Full {
		unchanged, changed = 50, 10
	}
	var out []Result
	for _, builder := range []string{oci.Name, docker.Name} {
		r, err := MeasureRebuild(ctx, builder, unchanged, changed)
		if errors.Is(err, errNoDocker) && !requireDocker() {
			out = append(out, skipped("rebuild", builder, "ms", err.Error()))
			continue
		}
		if err != nil {
			return out, err
		}
		un := summarize(Result{Measure: "rebuild", Case: builder + ", unchanged code", Unit: "ms",
			Note: fmt.Sprintf("%d blobs, %d bytes uploaded over %d relaunches (the content tag is found in the registry)",
				r.UnchangedBlobs, r.UnchangedBytes, len(r.Unchanged))}, ms(r.Unchanged))
		un = target(un, "< 1000 ms, nothing uploaded", un.P99 < 1000 && r.UnchangedBlobs == 0)
		bytesKB := make([]float64, len(r.ChangedBytes))
		for i, n := range r.ChangedBytes {
			bytesKB[i] = float64(n) / 1024
		}
		ch := summarize(Result{Measure: "rebuild", Case: builder + ", one file changed", Unit: "ms",
			Note: fmt.Sprintf("blobs uploaded per build %v (code layer + config; the base never), %.0f KB median; code %d KB gzipped; cold build %d ms, %d blobs",
				r.ChangedBlobs, summarize(Result{}, bytesKB).Median, r.CodeBytes/1024, r.Cold.Milliseconds(), r.ColdBlobs)}, ms(r.Changed))
		ch = target(ch, "only the code layer uploaded", !slices.ContainsFunc(r.ChangedBlobs, func(n int) bool { return n > 2 }))
		out = append(out, un, ch)
	}
	return out, nil
}

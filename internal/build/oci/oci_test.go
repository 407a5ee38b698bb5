package oci

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway-ml/slipway/internal/build"
	"github.com/slipway-ml/slipway/internal/build/buildtest"
	"github.com/slipway-ml/slipway/internal/dockertest"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/registry/oci"
)

type env struct {
	reg  *buildtest.Registry
	base string
	dst  *oci.Registry
	b    *Builder
}

func setup(t *testing.T) env {
	t.Helper()
	reg := buildtest.NewRegistry(t)
	base := reg.PushBase(t, "base/busybox")
	dst, err := oci.New(oci.Config{Repository: reg.Host + "/jobs/train"})
	if err != nil {
		t.Fatal(err)
	}
	return env{reg: reg, base: base, dst: dst, b: New(Config{})}
}

func (e env) request(t *testing.T, files map[string]string) (build.Request, *buildtest.Lines) {
	logs := &buildtest.Lines{}
	return build.Request{Context: buildtest.Context(t, files), Registry: e.dst, Log: logs.Add}, logs
}

func code(base, version string) map[string]string {
	return map[string]string{
		"Dockerfile":   "FROM " + base + "\nWORKDIR /app\nENV MODE=train\nCOPY . /app\nENTRYPOINT [\"sh\", \"/app/run.sh\"]\n",
		"run.sh":       "echo \"mode=$MODE version=$(cat /app/version.txt) pwd=$(pwd)\"\n",
		"version.txt":  version,
		"data/big.txt": "unchanged data",
	}
}

// TestBuildAppendsOneLayer: the base goes to the registry once; each build
// of new code uploads only its code layer and config; an unchanged rebuild
// uploads nothing and returns the same digest; the image runs under Docker
// with the code in place.
func TestBuildAppendsOneLayer(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	before := len(e.reg.Uploads())

	req, logs := e.request(t, code(e.base, "1"))
	first, err := e.b.Build(ctx, req)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, logs)
	}
	if first.Skipped || first.Builder != "oci" || len(first.Tag) != 64 {
		t.Errorf("first build = %+v, want built by oci with a 64-digit tag", first)
	}
	if !strings.HasPrefix(first.Image, e.reg.Host+"/jobs/train@sha256:") {
		t.Errorf("image %q, want %s/jobs/train@sha256:...", first.Image, e.reg.Host)
	}
	up := e.reg.Uploads()[before:]
	newLayer := lastLayer(t, first.Image)
	if len(up) != 2 || !slices.Contains(up, newLayer) {
		t.Errorf("first build uploaded %s, want 2 blobs: the code layer %s and the config", buildtest.Sprint(up), newLayer)
	}

	n := len(e.reg.Uploads())
	req, logs = e.request(t, code(e.base, "1"))
	again, err := e.b.Build(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Skipped || again.Image != first.Image || again.Tag != first.Tag {
		t.Errorf("unchanged rebuild = %+v, want skipped with %s", again, first.Image)
	}
	if up := e.reg.Uploads()[n:]; len(up) != 0 {
		t.Errorf("unchanged rebuild uploaded %s, want nothing", buildtest.Sprint(up))
	}
	if !strings.Contains(logs.String(), "skipping the build") {
		t.Errorf("rebuild log %q does not say it skipped", logs)
	}

	n = len(e.reg.Uploads())
	req, _ = e.request(t, code(e.base, "2"))
	second, err := e.b.Build(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if second.Skipped || second.Tag == first.Tag || second.Image == first.Image {
		t.Errorf("changed code: %+v, want a new tag and image", second)
	}
	up = e.reg.Uploads()[n:]
	if len(up) != 2 || !slices.Contains(up, lastLayer(t, second.Image)) {
		t.Errorf("changed code uploaded %s, want 2 blobs: the new code layer and the config", buildtest.Sprint(up))
	}

	cli := dockertest.Client(t)
	out := buildtest.Run(t, cli, second.Image, true)
	if want := "mode=train version=2 pwd=/app"; strings.TrimSpace(out) != want {
		t.Errorf("the image printed %q, want %q", out, want)
	}
}

// lastLayer returns the digest of the image's top layer.
func lastLayer(t *testing.T, ref string) string {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := img.Layers()
	if err != nil || len(ls) < 2 {
		t.Fatalf("layers of %s: %d, %v; want at least 2", ref, len(ls), err)
	}
	d, err := ls[len(ls)-1].Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func TestFits(t *testing.T) {
	t.Parallel()
	b := New(Config{})
	tests := []struct {
		name  string
		files map[string]string
		req   build.Request
		want  error // nil, build.ErrNotFit, or job.ErrInvalid
	}{
		{"copy only", map[string]string{"Dockerfile": "FROM b\nCOPY . /app\nCMD python x.py\nLABEL a=b\n"}, build.Request{}, nil},
		{"run", map[string]string{"Dockerfile": "FROM b\nRUN make\n"}, build.Request{}, build.ErrNotFit},
		{"multi-stage", map[string]string{"Dockerfile": "FROM b AS x\nFROM c\nCOPY . /\n"}, build.Request{}, build.ErrNotFit},
		{"copy --from", map[string]string{"Dockerfile": "FROM b\nCOPY --from=x /a /b\n"}, build.Request{}, build.ErrNotFit},
		{"add archive", map[string]string{"Dockerfile": "FROM b\nADD data.tar.gz /data\n"}, build.Request{}, build.ErrNotFit},
		{"variables", map[string]string{"Dockerfile": "FROM b\nWORKDIR $HOME\n"}, build.Request{}, build.ErrNotFit},
		{"generated, deps in base", map[string]string{"requirements.txt": "x"}, build.Request{BaseImage: "b", DepsInBase: true}, nil},
		{"generated, deps to install", map[string]string{"requirements.txt": "x"}, build.Request{BaseImage: "b"}, build.ErrNotFit},
		{"nothing to build", map[string]string{"main.go": ""}, build.Request{BaseImage: "b"}, job.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := tc.req
			req.Context, req.Registry = buildtest.Context(t, tc.files), &oci.Registry{}
			err := b.Fits(req)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("Fits = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestGeneratedPython: a Python project without a Dockerfile, over a base
// that holds its dependencies, builds without a daemon and runs.
func TestGeneratedPython(t *testing.T) {
	t.Parallel()
	e := setup(t)
	req, logs := e.request(t, map[string]string{"requirements.txt": "numpy\n", "train.py": "print('hi')\n"})
	req.BaseImage, req.DepsInBase, req.Entrypoint = e.base, true, []string{"cat", "train.py"}
	res, err := build.Auto{Fast: e.b}.Build(context.Background(), req)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, logs)
	}
	out := buildtest.Run(t, dockertest.Client(t), res.Image, true)
	if strings.TrimSpace(out) != "print('hi')" {
		t.Errorf("the image printed %q, want the code of train.py", out)
	}
}

func TestBuildErrors(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	req, _ := e.request(t, map[string]string{"Dockerfile": "FROM " + e.base + "\nCOPY missing.py /app/\n"})
	if _, err := e.b.Build(ctx, req); !errors.Is(err, job.ErrInvalid) || !strings.Contains(err.Error(), "missing.py") {
		t.Errorf("COPY of a missing file: got %v, want ErrInvalid naming it", err)
	}
	req, _ = e.request(t, map[string]string{"Dockerfile": "FROM " + e.base + "\nCOPY . /app\n"})
	req.Platform = "linux/arm64"
	if _, err := e.b.Build(ctx, req); !errors.Is(err, job.ErrInvalid) || !strings.Contains(err.Error(), "linux/amd64") {
		t.Errorf("platform mismatch: got %v, want ErrInvalid naming the base's platform", err)
	}
	req, _ = e.request(t, map[string]string{"Dockerfile": "FROM " + e.reg.Host + "/no/such:1\nCOPY . /app\n"})
	if _, err := e.b.Build(ctx, req); err == nil || !strings.Contains(err.Error(), "reading base image") {
		t.Errorf("missing base: got %v, want an error reading the base image", err)
	}
}

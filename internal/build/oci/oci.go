// Package oci is the daemonless builder: when a Dockerfile only copies files
// and sets config (FROM, COPY, ADD, ENV, WORKDIR, ENTRYPOINT, CMD, LABEL), it
// appends the code as one layer onto the base image, straight in the
// registry, with go-containerregistry. No Docker daemon is needed, and the
// base image's layers are never uploaded again: the registry already has
// them (or mounts them from the base's repository).
package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/slipway-ml/slipway/internal/build"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/registry"
)

// Name is the builder's name in results and logs.
const Name = "oci"

// Config configures the builder.
type Config struct {
	// Options are extra go-containerregistry options for every registry
	// request (a transport, say). Default none.
	Options []remote.Option
}

// Builder appends code layers onto base images in the registry.
type Builder struct {
	cfg Config
}

var (
	_ build.Builder = (*Builder)(nil)
	_ build.Fitter  = (*Builder)(nil)
)

// New returns the builder.
func New(cfg Config) *Builder { return &Builder{cfg: cfg} }

// Fits implements build.Fitter: it returns an error wrapping
// build.ErrNotFit when the Dockerfile runs anything, and the plan's own
// error (no Dockerfile, say) when the request cannot be built at all.
func (b *Builder) Fits(req build.Request) error {
	p, err := build.Prepare(req)
	if err != nil {
		return err
	}
	_, err = readRecipe(p.Instructions)
	return err
}

// Build implements build.Builder.
func (b *Builder) Build(ctx context.Context, req build.Request) (build.Result, error) {
	req = req.WithDefaults()
	ctx, cancel := build.WithTimeout(ctx, req)
	defer cancel()
	res, err := b.build(ctx, req)
	if err != nil && context.Cause(ctx) != nil && ctx.Err() != nil {
		return build.Result{}, fmt.Errorf("%w (%w)", context.Cause(ctx), err)
	}
	return res, err
}

func (b *Builder) build(ctx context.Context, req build.Request) (build.Result, error) {
	p, err := build.Prepare(req)
	if err != nil {
		return build.Result{}, err
	}
	rec, err := readRecipe(p.Instructions)
	if err != nil {
		return build.Result{}, err
	}
	files, err := rec.layerFiles(p.Context)
	if err != nil {
		return build.Result{}, err
	}

	baseRef, err := name.ParseReference(rec.base)
	if err != nil {
		return build.Result{}, fmt.Errorf("%w: FROM %s: %v", job.ErrInvalid, rec.base, err)
	}
	plat := v1.Platform{OS: p.Platform.OS, Architecture: p.Platform.Architecture, Variant: p.Platform.Variant}
	opts := append(slices.Clone(b.cfg.Options), remote.WithContext(ctx),
		remote.WithAuthFromKeychain(registry.Keychain(req.Registry)), remote.WithPlatform(plat))
	base, err := remote.Image(baseRef, opts...)
	if err != nil {
		return build.Result{}, fmt.Errorf("reading base image %s: %w", rec.base, err)
	}
	baseDigest, err := base.Digest()
	if err != nil {
		return build.Result{}, fmt.Errorf("reading base image %s: %w", rec.base, err)
	}
	cf, err := base.ConfigFile()
	if err != nil {
		return build.Result{}, fmt.Errorf("reading base image %s config: %w", rec.base, err)
	}
	if cf.OS != "" && cf.Architecture != "" && (cf.OS != plat.OS || cf.Architecture != plat.Architecture) {
		return build.Result{}, fmt.Errorf("%w: base image %s is %s/%s, want %s", job.ErrInvalid, rec.base, cf.OS, cf.Architecture, p.Platform)
	}

	tag := p.Tag([]string{baseDigest.String()})
	if res, ok := build.Skip(ctx, req, tag, Name); ok {
		return res, nil
	}

	img, err := rec.apply(base, cf.Config, files)
	if err != nil {
		return build.Result{}, err
	}
	repo, err := req.Registry.Repository(ctx)
	if err != nil {
		return build.Result{}, fmt.Errorf("finding the repository: %w", err)
	}
	dst, err := name.NewTag(repo + ":" + tag)
	if err != nil {
		return build.Result{}, fmt.Errorf("%w: repository %s: %v", job.ErrInvalid, repo, err)
	}
	auth, err := req.Registry.Auth(ctx)
	if err != nil {
		return build.Result{}, fmt.Errorf("logging in to %s: %w", registry.Host(repo), err)
	}
	digest, err := img.Digest()
	if err != nil {
		return build.Result{}, fmt.Errorf("computing the image digest: %w", err)
	}
	req.Log(fmt.Sprintf("appending the code (%d files) as one layer onto %s@%s", countFiles(files), rec.base, baseDigest))
	if err := push(dst, img, req.Log, append(slices.Clone(b.cfg.Options), remote.WithContext(ctx), remote.WithAuth(auth))); err != nil {
		return build.Result{}, fmt.Errorf("pushing %s: %w", dst, err)
	}
	req.Log(fmt.Sprintf("pushed %s:%s (%s)", repo, tag, digest))
	return build.Result{Image: repo + "@" + digest.String(), Tag: tag, Builder: Name}, nil
}

func countFiles(files []build.File) int {
	n := 0
	for _, f := range files {
		if f.Type != tar.TypeDir {
			n++
		}
	}
	return n
}

// apply makes the new image: base + the code layer + the config changes.
func (rec *recipe) apply(base v1.Image, c v1.Config, files []build.File) (v1.Image, error) {
	var buf bytes.Buffer
	if err := writeLayer(&buf, files); err != nil {
		return nil, err
	}
	mt, err := base.MediaType()
	if err != nil {
		return nil, fmt.Errorf("reading base image media type: %w", err)
	}
	layerType := types.DockerLayer
	if mt == types.OCIManifestSchema1 {
		layerType = types.OCILayer
	}
	body := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil },
		tarball.WithMediaType(layerType))
	if err != nil {
		return nil, fmt.Errorf("making the code layer: %w", err)
	}
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer, History: v1.History{
		CreatedBy: "slipway oci builder: COPY code", Created: v1.Time{Time: epoch}}})
	if err != nil {
		return nil, fmt.Errorf("appending the code layer: %w", err)
	}
	c = *c.DeepCopy()
	for _, kv := range rec.env {
		c.Env = setEnv(c.Env, kv[0], kv[1])
	}
	if rec.workdir != "" {
		c.WorkingDir = strings.TrimSuffix(rec.workdir, "/")
		if c.WorkingDir == "" {
			c.WorkingDir = "/"
		}
	}
	if rec.hasEP {
		c.Entrypoint = rec.entrypoint
		c.Cmd = nil
	}
	if rec.hasCmd {
		c.Cmd = rec.cmd
	}
	if len(rec.labels) > 0 {
		if c.Labels == nil {
			c.Labels = map[string]string{}
		}
		for k, v := range rec.labels {
			c.Labels[k] = v
		}
	}
	if img, err = mutate.Config(img, c); err != nil {
		return nil, fmt.Errorf("setting the image config: %w", err)
	}
	return img, nil
}

func setEnv(env []string, k, v string) []string {
	for i, e := range env {
		if name, _, _ := strings.Cut(e, "="); name == k {
			env[i] = k + "=" + v
			return env
		}
	}
	return append(env, k+"="+v)
}

// push writes img and reports progress in a few lines (every quarter).
func push(dst name.Tag, img v1.Image, log func(string), opts []remote.Option) error {
	updates := make(chan v1.Update, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		next := int64(0)
		for u := range updates {
			if u.Total <= 0 || u.Error != nil {
				continue
			}
			if pct := u.Complete * 100 / u.Total; pct >= next {
				log(fmt.Sprintf("pushing: %d of %d bytes", u.Complete, u.Total))
				next = pct/25*25 + 25
			}
		}
	}()
	err := remote.Write(dst, img, append(opts, remote.WithProgress(updates))...)
	<-done
	return err
}

// Package docker is the builder on the Docker Engine API: the classic
// builder (BuildKit needs a session the engine API alone does not give, so
// it is not used), build output streamed line by line, a build timeout, the
// platform passed through, then a push to the registry with its credentials
// and progress.
//
// Without a registry in the request, the image stays in the engine under a
// local repository, which is all a local-container queue needs.
package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/image"
	dockerregistry "github.com/docker/docker/api/types/registry"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	slbuild "github.com/slipway-ml/slipway/internal/build"
	"github.com/slipway-ml/slipway/internal/registry"
)

// Name is the builder's name in results and logs.
const Name = "docker"

// DefaultLocalRepository is where images go without a registry.
const DefaultLocalRepository = "slipway-build/code"

// dockerfileName is where a generated Dockerfile goes in the context; it is
// added to .dockerignore so that COPY . never copies it.
const dockerfileName = ".slipway.Dockerfile"

// Engine is the part of the Docker client the builder uses.
type Engine interface {
	ImageBuild(ctx context.Context, buildContext io.Reader, options build.ImageBuildOptions) (build.ImageBuildResponse, error)
	ImagePush(ctx context.Context, ref string, options image.PushOptions) (io.ReadCloser, error)
	ImageInspect(ctx context.Context, imageID string, opts ...client.ImageInspectOption) (image.InspectResponse, error)
}

// Config configures the builder.
type Config struct {
	// Client is the Docker engine (a *client.Client made with
	// client.WithAPIVersionNegotiation()). Required.
	Client Engine
	// LocalRepository names images kept in the engine when a request has no
	// registry. Default DefaultLocalRepository.
	LocalRepository string
}

// Builder builds on a Docker engine.
type Builder struct {
	cfg Config
}

var _ slbuild.Builder = (*Builder)(nil)

// New checks cfg and returns the builder.
func New(cfg Config) (*Builder, error) {
	if cfg.Client == nil {
		return nil, errors.New("docker builder: no Docker client")
	}
	if cfg.LocalRepository == "" {
		cfg.LocalRepository = DefaultLocalRepository
	}
	return &Builder{cfg: cfg}, nil
}

// Build implements build.Builder.
func (b *Builder) Build(ctx context.Context, req slbuild.Request) (slbuild.Result, error) {
	req = req.WithDefaults()
	ctx, cancel := slbuild.WithTimeout(ctx, req)
	defer cancel()
	res, err := b.build(ctx, req)
	if err != nil && ctx.Err() != nil {
		return slbuild.Result{}, fmt.Errorf("%w: %w", context.Cause(ctx), err)
	}
	return res, err
}

func (b *Builder) build(ctx context.Context, req slbuild.Request) (slbuild.Result, error) {
	p, err := slbuild.Prepare(req)
	if err != nil {
		return slbuild.Result{}, err
	}
	var digests []string
	for _, base := range p.Bases() {
		digests = append(digests, b.baseDigest(ctx, req, base))
	}
	tag := p.Tag(digests)

	repo := b.cfg.LocalRepository
	if req.Registry != nil {
		if res, ok := slbuild.Skip(ctx, req, tag, Name); ok {
			return res, nil
		}
		if repo, err = req.Registry.Repository(ctx); err != nil {
			return slbuild.Result{}, fmt.Errorf("finding the repository: %w", err)
		}
	} else if _, err := b.cfg.Client.ImageInspect(ctx, repo+":"+tag); err == nil {
		req.Log(fmt.Sprintf("image %s:%s already built: skipping the build", repo, tag[:12]))
		return slbuild.Result{Image: repo + ":" + tag, Tag: tag, Skipped: true, Builder: Name}, nil
	}
	ref := repo + ":" + tag

	tarball, dockerfile, err := contextTar(p)
	if err != nil {
		return slbuild.Result{}, err
	}
	resp, err := b.cfg.Client.ImageBuild(ctx, bytes.NewReader(tarball), build.ImageBuildOptions{
		Tags: []string{ref}, Dockerfile: dockerfile, Remove: true, ForceRemove: true,
		Platform: req.Platform, Version: build.BuilderV1,
		Labels: map[string]string{"slipway.content-tag": tag},
	})
	if err != nil {
		return slbuild.Result{}, fmt.Errorf("building %s: %w", ref, err)
	}
	err = stream(resp.Body, req.Log, nil)
	resp.Body.Close()
	if err != nil {
		return slbuild.Result{}, fmt.Errorf("building %s: %w", ref, err)
	}
	if req.Registry == nil {
		return slbuild.Result{Image: ref, Tag: tag, Builder: Name}, nil
	}

	digest, err := b.push(ctx, req, ref)
	if err != nil {
		return slbuild.Result{}, fmt.Errorf("pushing %s: %w", ref, err)
	}
	return slbuild.Result{Image: repo + "@" + digest, Tag: tag, Builder: Name}, nil
}

// baseDigest names the exact base image: its id in the engine, else its
// digest in its registry, else (it cannot be known before the build pulls
// it) its reference.
func (b *Builder) baseDigest(ctx context.Context, req slbuild.Request, base string) string {
	if img, err := b.cfg.Client.ImageInspect(ctx, base); err == nil {
		return img.ID
	}
	if req.Registry != nil {
		if ref, err := name.ParseReference(base); err == nil {
			desc, err := remote.Head(ref, remote.WithContext(ctx), remote.WithAuthFromKeychain(registry.Keychain(req.Registry)))
			if err == nil {
				return desc.Digest.String()
			}
		}
	}
	req.Log(fmt.Sprintf("base image %s not found locally or in its registry: tagging by its name", base))
	return base
}

// contextTar writes the build context with the Dockerfile in it and
// returns the Dockerfile's name there.
func contextTar(p *slbuild.Plan) ([]byte, string, error) {
	own := p.Context.Get("Dockerfile")
	if own != nil && string(own.Body) == p.Dockerfile {
		b, err := p.Context.Tar()
		return b, "Dockerfile", err
	}
	ignore := []byte{}
	if di := p.Context.Get(".dockerignore"); di != nil {
		ignore = append(ignore, di.Body...)
		ignore = append(ignore, '\n')
	}
	ignore = append(ignore, []byte(dockerfileName+"\n.dockerignore\n")...)
	b, err := p.Context.Tar(
		slbuild.File{Name: dockerfileName, Type: tar.TypeReg, Mode: 0o644, Body: []byte(p.Dockerfile)},
		slbuild.File{Name: ".dockerignore", Type: tar.TypeReg, Mode: 0o644, Body: ignore},
	)
	return b, dockerfileName, err
}

func (b *Builder) push(ctx context.Context, req slbuild.Request, ref string) (string, error) {
	auth, err := req.Registry.Auth(ctx)
	if err != nil {
		return "", fmt.Errorf("logging in: %w", err)
	}
	ac, err := auth.Authorization()
	if err != nil {
		return "", fmt.Errorf("logging in: %w", err)
	}
	encoded, err := dockerregistry.EncodeAuthConfig(dockerregistry.AuthConfig{
		Username: ac.Username, Password: ac.Password, Auth: ac.Auth,
		IdentityToken: ac.IdentityToken, RegistryToken: ac.RegistryToken,
		ServerAddress: registry.Host(ref),
	})
	if err != nil {
		return "", err
	}
	rc, err := b.cfg.Client.ImagePush(ctx, ref, image.PushOptions{RegistryAuth: encoded})
	if err != nil {
		return "", err
	}
	defer rc.Close()
	var digest string
	err = stream(rc, req.Log, func(aux json.RawMessage) {
		var a struct{ Digest string }
		if json.Unmarshal(aux, &a) == nil && a.Digest != "" {
			digest = a.Digest
		}
	})
	if err != nil {
		return "", err
	}
	if digest == "" {
		return "", errors.New("the engine reported no digest for the push")
	}
	return digest, nil
}

// stream reads the engine's JSON messages: build output and push statuses
// go to log (progress bars left out), an error message ends the stream.
func stream(r io.Reader, log func(string), aux func(json.RawMessage)) error {
	dec := json.NewDecoder(r)
	for {
		var m jsonmessage.JSONMessage
		if err := dec.Decode(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("reading the engine's output: %w", err)
		}
		switch {
		case m.Error != nil:
			return fmt.Errorf("%s", m.Error.Message)
		case m.ErrorMessage != "":
			return fmt.Errorf("%s", m.ErrorMessage)
		case m.Aux != nil && aux != nil:
			aux(*m.Aux)
		case m.Stream != "":
			for line := range strings.Lines(m.Stream) {
				if line = strings.TrimRight(line, "\r\n"); strings.TrimSpace(line) != "" {
					log(line)
				}
			}
		case m.Status != "" && (m.Progress == nil || m.Progress.Total == 0 && m.Progress.Current == 0):
			if m.ID != "" {
				log(m.ID + ": " + m.Status)
			} else {
				log(m.Status)
			}
		}
	}
}

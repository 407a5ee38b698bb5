// Package build is the seam between the agent and the builders that turn a
// job's code into an image in a registry: build/docker (Docker Engine API),
// build/oci (daemonless: the code appended as a layer onto a base image in
// the registry) and build/kaniko (a Kubernetes Job), with Auto choosing
// between a fast path and a general one.
//
// Every builder tags the image by content: the full SHA-256 of the
// normalised build context, the Dockerfile, the platform and the digests of
// the base images (Plan.Tag). Before it builds, it asks the registry for
// that tag (Skip) and, when it is there, returns it with Skipped set: the
// same code is never built twice. When the registry cannot be asked, it
// builds.
package build

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/slipway-ml/slipway/internal/registry"
)

// Builder builds a job's code into an image in a registry.
type Builder interface {
	Build(ctx context.Context, req Request) (Result, error)
}

// Fitter is implemented by builders that can take only some requests
// (build/oci); Auto asks it first.
type Fitter interface {
	// Fits returns nil when the builder can build req, else why not.
	Fits(req Request) error
}

// DefaultPlatform is the platform images are built for unless the request
// names another: SageMaker's.
const DefaultPlatform = "linux/amd64"

// Request is one build.
type Request struct {
	// Context is the build context: the job's code as a tar, gzipped or not
	// (source.Pack's tarball as it is). Required.
	Context []byte
	// Dockerfile replaces the context's own Dockerfile when set. Default "":
	// the context's Dockerfile, else one generated for a Python project
	// (see Generate).
	Dockerfile string
	// BaseImage is the image a generated Dockerfile starts FROM. Required
	// only when the Dockerfile is generated.
	BaseImage string
	// DepsInBase says the base image already holds the project's Python
	// dependencies, so a generated Dockerfile installs none (and build/oci
	// can take it). Default false.
	DepsInBase bool
	// Entrypoint is a generated Dockerfile's ENTRYPOINT. Default: python
	// and the project's train.py or main.py when there is one.
	Entrypoint []string
	// Registry is where the image goes. Required by build/oci and
	// build/kaniko; build/docker without one keeps the image in the local
	// engine (enough for local-container queues).
	Registry registry.Registry
	// Platform is os/arch[/variant]. Default DefaultPlatform.
	Platform string
	// Log receives the build's and the push's output, line by line.
	// Default: discarded.
	Log func(line string)
	// Timeout bounds the whole build and push. Default 0: only ctx bounds it.
	Timeout time.Duration
}

// Result is a built (or found) image.
type Result struct {
	// Image is the image by digest: repository@sha256:<hex>.
	Image string
	// Tag is the content tag the image is also known by.
	Tag string
	// Skipped is true when the tag was already in the registry and nothing
	// was built.
	Skipped bool
	// Builder names the builder that built it ("docker", "oci", "kaniko").
	Builder string
}

// ErrNoDockerfile means the context has no Dockerfile and is not a Python
// project that one could be generated for. It wraps job.ErrInvalid.
var ErrNoDockerfile = errors.New("no Dockerfile")

// ErrNotFit is returned by a builder that cannot take a request (build/oci
// given a Dockerfile with RUN); Auto then falls back.
var ErrNotFit = errors.New("builder does not fit this build")

// WithDefaults returns req with its defaults filled in.
func (req Request) WithDefaults() Request {
	if req.Platform == "" {
		req.Platform = DefaultPlatform
	}
	if req.Log == nil {
		req.Log = func(string) {}
	}
	return req
}

// Validate checks the fields every builder needs.
func (req Request) Validate() error {
	if len(req.Context) == 0 {
		return fmt.Errorf("%w: build: no context", errInvalid)
	}
	if _, err := ParsePlatform(req.Platform); err != nil {
		return err
	}
	return nil
}

// Skip asks the registry whether tag is there. It returns the result to
// hand back when it is; when the registry cannot be asked, it says so in the
// log and returns false, so that the caller builds.
func Skip(ctx context.Context, req Request, tag, builder string) (Result, bool) {
	if req.Registry == nil {
		return Result{}, false
	}
	repo, err := req.Registry.Repository(ctx)
	if err != nil {
		req.Log(fmt.Sprintf("could not ask the registry for tag %s (%v): building", short(tag), err))
		return Result{}, false
	}
	digest, ok, err := req.Registry.Exists(ctx, tag)
	switch {
	case err != nil:
		req.Log(fmt.Sprintf("could not ask the registry for %s:%s (%v): building", repo, short(tag), err))
		return Result{}, false
	case !ok:
		return Result{}, false
	}
	req.Log(fmt.Sprintf("image %s:%s already built: skipping the build", repo, short(tag)))
	return Result{Image: repo + "@" + digest, Tag: tag, Skipped: true, Builder: builder}, true
}

// short abbreviates a content tag for messages.
func short(tag string) string {
	if len(tag) > 12 {
		return tag[:12]
	}
	return tag
}

// WithTimeout applies req.Timeout to ctx.
func WithTimeout(ctx context.Context, req Request) (context.Context, context.CancelFunc) {
	if req.Timeout > 0 {
		return context.WithTimeoutCause(ctx, req.Timeout, fmt.Errorf("build timed out after %s", req.Timeout))
	}
	return context.WithCancel(ctx)
}

// Auto builds with Fast when it fits the request and with General otherwise:
// the `auto` builder type, oci before docker.
type Auto struct {
	Fast    Builder // tried first when it fits: build/oci
	General Builder // build/docker or build/kaniko
}

var _ Builder = Auto{}

// Build implements Builder. A Fits or Build error of the fast builder that
// is not ErrNotFit (a context without a Dockerfile, say) is returned as it
// is: the general builder could not do better.
func (a Auto) Build(ctx context.Context, req Request) (Result, error) {
	req = req.WithDefaults()
	if a.Fast != nil {
		var err error
		if f, ok := a.Fast.(Fitter); ok {
			err = f.Fits(req)
		}
		if err == nil {
			var res Result
			if res, err = a.Fast.Build(ctx, req); !errors.Is(err, ErrNotFit) {
				return res, err
			}
		}
		if !errors.Is(err, ErrNotFit) || a.General == nil {
			return Result{}, err
		}
		req.Log(fmt.Sprintf("%v: using the general builder", err))
	}
	if a.General == nil {
		return Result{}, fmt.Errorf("%w: build: no builder configured", errInvalid)
	}
	return a.General.Build(ctx, req)
}

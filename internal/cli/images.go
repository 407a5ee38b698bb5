package cli

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	awsecr "github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	dockerclient "github.com/docker/docker/client"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/slipway-ml/slipway/internal/build"
	"github.com/slipway-ml/slipway/internal/build/docker"
	"github.com/slipway-ml/slipway/internal/build/kaniko"
	buildoci "github.com/slipway-ml/slipway/internal/build/oci"
	"github.com/slipway-ml/slipway/internal/config"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/metrics"
	"github.com/slipway-ml/slipway/internal/registry"
	"github.com/slipway-ml/slipway/internal/registry/ecr"
	regoci "github.com/slipway-ml/slipway/internal/registry/oci"
)

// buildTimeout bounds one image build and push.
const buildTimeout = 30 * time.Minute

// images builds jobs' code into images, with the builder and registry that
// the agent config's builder and registry blocks (or the queue) name.
type images struct {
	cfg *config.Agent
	log *slog.Logger

	mu     sync.Mutex
	engine *dockerclient.Client
}

func newImages(cfg *config.Agent, log *slog.Logger) *images { return &images{cfg: cfg, log: log} }

// build is agent.Config.Build.
func (im *images) build(ctx context.Context, q job.Queue, j job.Job, code []byte, log func(string)) (build.Result, error) {
	reg, err := im.registry(ctx, q)
	if err != nil {
		return build.Result{}, err
	}
	b, err := im.builder(ctx, reg)
	if err != nil {
		return build.Result{}, err
	}
	base := j.Spec.Image
	if base == "" {
		base = im.cfg.Builder.BaseImage
	}
	start := time.Now()
	res, err := b.Build(ctx, build.Request{
		Context: code, BaseImage: base, Entrypoint: j.Spec.Entrypoint, Registry: reg,
		Platform: im.cfg.Builder.Platform, Log: log, Timeout: buildTimeout,
	})
	builder := res.Builder
	if builder == "" {
		builder = strings.ToLower(im.cfg.Builder.Type)
	}
	metrics.Default.ObserveBuild(builder, time.Since(start), res.Skipped, err)
	return res, err
}

// registry is where q's images go: for sagemaker the agent config's
// registry (ECR by default, named by registry.repository or uri,
// builder.destination, else the queue's EcrRepoName); for a local container
// the configured OCI registry, else none (the image stays in the engine).
func (im *images) registry(ctx context.Context, q job.Queue) (registry.Registry, error) {
	rc := im.cfg.Registry
	uri := rc.URI
	if uri == "" {
		uri = im.cfg.Builder.Destination
	}
	if rc.Type == "oci" || rc.Type == "acr" || rc.Type == "gcr" {
		return regoci.New(regoci.Config{Repository: uri})
	}
	if q.Resource != job.SageMaker {
		return nil, nil
	}
	name := rc.Repository
	if name == "" && uri == "" {
		if sm, errs := config.ValidateSageMakerQueue(q.Config); len(errs) == 0 {
			name = sm.EcrRepoName()
		}
	}
	if name == "" && uri == "" {
		return nil, fmt.Errorf("%w: no repository to push the built image to: set registry.repository in the agent config, or EcrRepoName in queue %s's config", job.ErrInvalid, q.Name)
	}
	ac, err := im.cfg.Environment.AWS(ctx)
	if err != nil {
		return nil, err
	}
	return ecr.New(ecr.Config{Client: awsecr.NewFromConfig(ac), Repository: name, URI: uri})
}

// kaniko returns the kaniko builder: Jobs in the Kubernetes cluster the
// agent runs in, else the one its kubeconfig names, reading the build
// context from the build-context-store bucket.
func (im *images) kaniko(ctx context.Context) (build.Builder, error) {
	rc, err := rest.InClusterConfig()
	if err != nil {
		rc, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
			clientcmd.NewDefaultClientConfigLoadingRules(), &clientcmd.ConfigOverrides{}).ClientConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("builder kaniko needs a Kubernetes cluster: not in one, and no kubeconfig: %w", err)
	}
	kube, err := kaniko.NewKube(rc)
	if err != nil {
		return nil, fmt.Errorf("connecting to Kubernetes: %w", err)
	}
	ac, err := im.cfg.Environment.AWS(ctx)
	if err != nil {
		return nil, err
	}
	b := im.cfg.Builder
	return kaniko.New(kaniko.Config{
		Kube: kube, S3: s3.NewFromConfig(ac), ContextStore: b.BuildContextStore, Image: b.KanikoImage,
		JobName: b.BuildJobName, SecretName: b.SecretName, SecretKey: b.SecretKey,
		Env: map[string]string{"AWS_REGION": ac.Region},
	})
}

// builder picks the builder builder.type names; auto (the default) appends
// the code as a layer in the registry when it can, and builds with Docker
// otherwise.
func (im *images) builder(ctx context.Context, reg registry.Registry) (build.Builder, error) {
	switch t := strings.ToLower(im.cfg.Builder.Type); t {
	case "docker":
		return im.docker()
	case "oci":
		if reg == nil {
			return nil, fmt.Errorf("%w: builder oci pushes to a registry: set the agent config's registry block", job.ErrInvalid)
		}
		return buildoci.New(buildoci.Config{}), nil
	case "noop":
		return nil, fmt.Errorf("%w: builder noop runs prebuilt images only: launch with --image", job.ErrInvalid)
	case "kaniko":
		return im.kaniko(ctx)
	case "", "auto":
		general, err := im.docker()
		if reg == nil {
			return general, err // build/oci needs a registry
		}
		if err != nil {
			im.log.Warn("no Docker engine for builds that need one; only the daemonless builder is available", "err", err)
			general = nil
		}
		return build.Auto{Fast: buildoci.New(buildoci.Config{}), General: general}, nil
	default:
		return nil, fmt.Errorf("%w: builder.type %q: want auto, docker, oci, kaniko or noop", job.ErrInvalid, t)
	}
}

// docker returns the Docker builder on the local engine, made once.
func (im *images) docker() (build.Builder, error) {
	im.mu.Lock()
	defer im.mu.Unlock()
	if im.engine == nil {
		cli, err := dockerclient.NewClientWithOpts(dockerclient.FromEnv, dockerclient.WithAPIVersionNegotiation())
		if err != nil {
			return nil, fmt.Errorf("connecting to the Docker engine: %w", err)
		}
		im.engine = cli
	}
	return docker.New(docker.Config{Client: im.engine})
}

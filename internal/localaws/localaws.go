// Package localaws is a local stand-in for the part of AWS that Slipway's
// SageMaker path uses: SageMaker training jobs run on the local Docker engine,
// S3 kept on disk, ECR in front of an embedded OCI registry, CloudWatch Logs,
// STS, and the Secrets Manager and SSM parameters that secret references
// name (stored in clear: a test double, not a vault), all on one port and speaking the real wire protocols, so that the
// AWS SDKs and the AWS CLI work against it unchanged through an endpoint URL.
//
// Requests are routed by X-Amz-Target for the JSON protocols (SageMaker.*,
// AmazonEC2ContainerRegistry_V20150921.*, Logs_20140328.*), as a query
// protocol call for STS (a form POST to /), to the registry under /v2/, to
// the admin endpoint under /_localaws/, and to S3 (path-style) otherwise.
// Signatures are not checked: any credentials are accepted, and so are
// unsigned requests.
package localaws

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/client"

	"github.com/slipway-ml/slipway/internal/localaws/ecr"
	"github.com/slipway-ml/slipway/internal/localaws/fault"
	"github.com/slipway-ml/slipway/internal/localaws/logs"
	"github.com/slipway-ml/slipway/internal/localaws/s3"
	"github.com/slipway-ml/slipway/internal/localaws/sagemaker"
	"github.com/slipway-ml/slipway/internal/localaws/secretsmanager"
	"github.com/slipway-ml/slipway/internal/localaws/ssm"
)

// Faults is the set of faults the endpoint injects; see fault.Faults.
type Faults = fault.Faults

// DefaultAddr is where `slipway local-aws` listens unless told otherwise.
const DefaultAddr = "127.0.0.1:4566"

// Config sets up a Server. The zero value works, with the defaults below.
type Config struct {
	// Addr is the address ListenAndServe listens on. Default DefaultAddr.
	// Serve ignores it and uses the listener it is given.
	Addr string
	// DataDir holds everything the endpoint keeps: S3 buckets (s3/), job
	// records (sagemaker/), log streams (logs/), registry blobs and
	// manifests (registry/), secrets (secretsmanager/) and parameters
	// (ssm/), the last two in clear, owner-only. Default: slipway/local-aws under the user's
	// cache folder.
	DataDir string
	// Region names ARNs and is what the endpoint claims to be. Default us-east-1.
	Region string
	// Account is the fixed account id that STS and ARNs answer. Default 000000000000.
	Account string
	// Docker is the engine that runs training containers. Default: a client
	// from the environment (DOCKER_HOST, ...), with API version negotiation.
	Docker client.APIClient
	// Logger receives the endpoint's own messages. Default: discarded.
	Logger *slog.Logger
	// Faults are injected from the start; the admin endpoint changes them at
	// run time. Default: none.
	Faults Faults
	// StopGrace is how long a training container has between SIGTERM and
	// SIGKILL when stopped or past MaxRuntimeInSeconds. Default 120s, as
	// SageMaker.
	StopGrace time.Duration
	// MaxInstanceCount bounds ResourceConfig.InstanceCount; more is a
	// ValidationException. Default 4.
	MaxInstanceCount int
	// MaxRunningJobs bounds the training jobs in progress at once; past it
	// CreateTrainingJob answers ResourceLimitExceeded. Default 0: no bound.
	MaxRunningJobs int
	// StopOnShutdown makes Serve stop running training containers when it
	// returns (their jobs end Stopped). Default false: containers keep
	// running, and the next endpoint on the same DataDir re-attaches to them.
	StopOnShutdown bool
	// ShutdownTimeout bounds how long Serve waits, once its context is done,
	// for requests and jobs to settle. Default StopGrace + 30s.
	ShutdownTimeout time.Duration
}

// WithDefaults returns c with every unset field at its default.
func (c Config) WithDefaults() (Config, error) {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.DataDir == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return c, fmt.Errorf("finding a data dir (set DataDir): %w", err)
		}
		c.DataDir = filepath.Join(dir, "slipway", "local-aws")
	}
	if c.Region == "" {
		c.Region = "us-east-1"
	}
	if c.Account == "" {
		c.Account = "000000000000"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.StopGrace == 0 {
		c.StopGrace = 120 * time.Second
	}
	if c.MaxInstanceCount == 0 {
		c.MaxInstanceCount = 4
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = c.StopGrace + 30*time.Second
	}
	return c, nil
}

// Validate reports a config that cannot work.
func (c Config) Validate() error {
	if len(c.Account) != 12 || strings.Trim(c.Account, "0123456789") != "" {
		return fmt.Errorf("account %q: want 12 digits: %w", c.Account, errInvalid)
	}
	if c.StopGrace < 0 || c.MaxInstanceCount < 0 || c.MaxRunningJobs < 0 || c.ShutdownTimeout < 0 {
		return fmt.Errorf("negative StopGrace, MaxInstanceCount, MaxRunningJobs or ShutdownTimeout: %w", errInvalid)
	}
	if err := c.Faults.Validate(); err != nil {
		return fmt.Errorf("faults: %w: %w", err, errInvalid)
	}
	return nil
}

var errInvalid = errors.New("invalid local AWS config")

// Server is a local AWS endpoint.
type Server struct {
	cfg        Config
	log        *slog.Logger
	ownsDocker bool
	faults     *fault.Injector
	s3         *s3.Service
	logs       *logs.Store
	sm         *sagemaker.Service
	ecr        *ecr.Service
	secrets    *secretsmanager.Service
	params     *ssm.Service
	handler    http.Handler

	mu  sync.Mutex
	url string
}

// New opens the data dir and builds the services; nothing listens yet.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, faults: fault.New(cfg.Faults)}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating data dir: %w", err)
	}
	id, err := endpointID(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if cfg.Docker == nil {
		cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if err != nil {
			return nil, fmt.Errorf("creating docker client: %w", err)
		}
		cfg.Docker, s.ownsDocker = cli, true
		s.cfg.Docker = cli
	}
	if s.s3, err = s3.New(filepath.Join(cfg.DataDir, "s3"), cfg.Logger); err != nil {
		return nil, err
	}
	if s.logs, err = logs.Open(filepath.Join(cfg.DataDir, "logs"), cfg.Region, cfg.Account); err != nil {
		return nil, err
	}
	if s.secrets, err = secretsmanager.Open(filepath.Join(cfg.DataDir, "secretsmanager"), cfg.Region, cfg.Account); err != nil {
		return nil, err
	}
	if s.params, err = ssm.Open(filepath.Join(cfg.DataDir, "ssm"), cfg.Region, cfg.Account); err != nil {
		return nil, err
	}
	if s.ecr, err = ecr.New(filepath.Join(cfg.DataDir, "registry"), cfg.Region, cfg.Account, s.RegistryHost, cfg.Logger); err != nil {
		return nil, err
	}
	s.sm, err = sagemaker.New(sagemaker.Config{
		Dir: filepath.Join(cfg.DataDir, "sagemaker"), Region: cfg.Region, Account: cfg.Account,
		EndpointID: id, Docker: cfg.Docker, Objects: s.s3, Logs: s.logs, ResolveImage: s.ecr.Resolve,
		Faults: s.faults, StopGrace: cfg.StopGrace, MaxInstanceCount: cfg.MaxInstanceCount,
		MaxRunningJobs: cfg.MaxRunningJobs, StopOnShutdown: cfg.StopOnShutdown, Log: cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	s.handler = s.routes()
	return s, nil
}

// endpointID returns the id kept in dir, making one on first use. It labels
// this endpoint's containers.
func endpointID(dir string) (string, error) {
	path := filepath.Join(dir, "endpoint-id")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	buf := make([]byte, 8)
	_, _ = rand.Read(buf)
	id := hex.EncodeToString(buf)
	if err := os.WriteFile(path, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("writing endpoint id: %w", err)
	}
	return id, nil
}

// EndpointID is the value of the slipway.localaws.endpoint label on this
// endpoint's containers and networks.
func (s *Server) EndpointID() string {
	id, _ := endpointID(s.cfg.DataDir)
	return id
}

// Handler serves every service. Training jobs run only while Serve runs.
func (s *Server) Handler() http.Handler { return s.handler }

// URL is the endpoint's base URL (http://127.0.0.1:PORT) once Serve has
// started; empty before.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

// RegistryHost is the host:port of the embedded registry, as repository URIs
// name it; empty before Serve starts.
func (s *Server) RegistryHost() string {
	return strings.TrimPrefix(s.URL(), "http://")
}

// ListenAndServe listens on Config.Addr and serves until ctx is done.
func (s *Server) ListenAndServe(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve answers on ln and runs training jobs (re-attaching to the ones an
// earlier endpoint on the same DataDir left running) until ctx is done; then
// it stops accepting requests, stops the running training containers when
// Config.StopOnShutdown is set (else leaves them running), waits for the jobs'
// records to settle and returns. It returns nil after a clean shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.mu.Lock()
	s.url = "http://" + loopbackAddr(ln.Addr())
	s.mu.Unlock()
	s.log.Info("local AWS endpoint serving", "url", s.URL(), "data", s.cfg.DataDir)

	jobsCtx, cancelJobs := context.WithCancel(ctx)
	defer cancelJobs()
	s.sm.Start(jobsCtx)

	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 30 * time.Second,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	cancelJobs()
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	errs := []error{serveErr}
	if err := srv.Shutdown(shutCtx); err != nil {
		errs = append(errs, fmt.Errorf("shutting down http server: %w", err))
	}
	if err := s.sm.Shutdown(shutCtx); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, s.logs.Close())
	if s.ownsDocker {
		if c, ok := s.cfg.Docker.(interface{ Close() error }); ok {
			errs = append(errs, c.Close())
		}
	}
	if errors.Is(serveErr, http.ErrServerClosed) {
		errs[0] = nil
	}
	return errors.Join(errs...)
}

// loopbackAddr names a listener's address the way clients on this machine
// reach it: an unspecified host (0.0.0.0, ::) becomes 127.0.0.1, which is
// also what Docker treats as an insecure registry.
func loopbackAddr(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	if tcp.IP == nil || tcp.IP.IsUnspecified() {
		return fmt.Sprintf("127.0.0.1:%d", tcp.Port)
	}
	return tcp.String()
}

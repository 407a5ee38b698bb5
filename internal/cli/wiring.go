package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/slipway-ml/slipway/internal/config"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/metrics"
	"github.com/slipway-ml/slipway/internal/runner"
	"github.com/slipway-ml/slipway/internal/runner/container"
	"github.com/slipway-ml/slipway/internal/runner/process"
	"github.com/slipway-ml/slipway/internal/runner/sagemaker"
	"github.com/slipway-ml/slipway/internal/secretref"
	"github.com/slipway-ml/slipway/internal/store"
	"github.com/slipway-ml/slipway/internal/store/postgres"
	"github.com/slipway-ml/slipway/internal/store/sqlite"
)

// defaultDSN is $XDG_DATA_HOME/slipway/slipway.db, else under ~/.local/share.
func defaultDSN() string {
	dir := os.Getenv("XDG_DATA_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = "."
		}
		dir = filepath.Join(home, ".local", "share")
	}
	return filepath.Join(dir, "slipway", "slipway.db")
}

// openStore opens the store a DSN names: postgres://... for PostgreSQL,
// else a SQLite file path or sqlite://PATH.
func openStore(ctx context.Context, dsn string) (store.Store, error) {
	switch {
	case postgres.IsDSN(dsn):
		s, err := postgres.Open(ctx, dsn)
		if err != nil {
			return nil, fmt.Errorf("opening store %s: %w", redactDSN(dsn), err)
		}
		return s, nil
	case strings.Contains(dsn, "://") && !strings.HasPrefix(dsn, "sqlite://"):
		return nil, usageErr("--db %q: want postgres://USER:PASSWORD@HOST/DB, a file path or sqlite://PATH", redactDSN(dsn))
	}
	s, err := sqlite.Open(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("opening store %s: %w", dsn, err)
	}
	return s, nil
}

// redactDSN hides a password in a DSN.
func redactDSN(dsn string) string {
	if at := strings.LastIndex(dsn, "@"); at > 0 {
		if i := strings.Index(dsn, "://"); i > 0 && i < at {
			return dsn[:i+3] + "…" + dsn[at:]
		}
	}
	return dsn
}

// runners makes each resource's runner on first use, so that an agent
// serving only local-process queues needs no Docker engine.
type runners struct {
	log *slog.Logger
	cfg *config.Agent

	mu      sync.Mutex
	made    map[job.Resource]runner.Runner
	sm      *sagemaker.Runner
	secrets *secretref.Resolver
}

func newRunners(log *slog.Logger, cfg *config.Agent) *runners {
	rs := &runners{log: log, cfg: cfg, made: map[job.Resource]runner.Runner{}}
	// Local runs resolve their secret references with the agent's own AWS
	// config, the one its images and SageMaker jobs use, loaded on the first
	// reference: an agent whose jobs have none needs no AWS setup.
	rs.secrets = secretref.New(func(ctx context.Context) (aws.Config, error) {
		ac, err := cfg.Environment.AWS(ctx)
		if err != nil {
			return aws.Config{}, err
		}
		ac.APIOptions = append(ac.APIOptions, metrics.Default.AWSAPIOptions()...)
		return ac, nil
	})
	return rs
}

// forQueue returns the runner for q's resource.
func (rs *runners) forQueue(q job.Queue) (runner.Runner, error) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if q.Resource == job.SageMaker {
		return rs.sagemaker(q)
	}
	if r, ok := rs.made[q.Resource]; ok {
		return r, nil
	}
	var (
		r   runner.Runner
		err error
	)
	switch q.Resource {
	case job.LocalProcess:
		r, err = process.New(process.Config{Logger: rs.log, Secrets: rs.secrets})
	case job.LocalContainer:
		r, err = container.New(container.Config{Logger: rs.log, Secrets: rs.secrets})
	default:
		err = fmt.Errorf("unknown resource %q", q.Resource)
	}
	if err != nil {
		return nil, err
	}
	rs.made[q.Resource] = r
	return r, nil
}

// sagemaker returns the SageMaker runner bound to q's config, as the claim
// carried it. The AWS clients are made once, from the standard chain and
// the agent config's environment block.
func (rs *runners) sagemaker(q job.Queue) (runner.Runner, error) {
	if rs.sm == nil {
		cfg := sagemaker.Config{Region: rs.cfg.Environment.Region, Profile: rs.cfg.Environment.Profile, Logger: rs.log,
			APIOptions: metrics.Default.AWSAPIOptions()}
		if loopbackEndpoint(os.Getenv("AWS_ENDPOINT_URL")) {
			// A local endpoint has no API limits to respect: follow jobs closely.
			cfg.PollMin, cfg.PollMax, cfg.LogPoll = 250*time.Millisecond, 2*time.Second, 250*time.Millisecond
		}
		r, err := sagemaker.New(context.Background(), cfg)
		if err != nil {
			return nil, err
		}
		rs.sm = r
	}
	return rs.sm.ForQueue(q), nil
}

// loopbackEndpoint reports whether an endpoint URL names this machine.
func loopbackEndpoint(endpoint string) bool {
	u, err := url.Parse(endpoint)
	if err != nil || u.Hostname() == "" {
		return false
	}
	if u.Hostname() == "localhost" {
		return true
	}
	ip := net.ParseIP(u.Hostname())
	return ip != nil && ip.IsLoopback()
}

// Package server is Slipway's HTTP API: queues, jobs, leases, events, logs
// and agents over JSON, long-polled claims, and the reaper that returns the
// jobs of vanished agents to their queues.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slipway-ml/slipway/internal/admission"
	"github.com/slipway-ml/slipway/internal/dashboard"
	"github.com/slipway-ml/slipway/internal/store"
)

// Config configures a Server.
type Config struct {
	// Store keeps the state. Required.
	Store store.Store
	// Logger receives the server's logs. Default: slog.Default().
	Logger *slog.Logger
	// LeaseTTL is how long a claim lasts unless its agent renews it.
	// Default: 30s.
	LeaseTTL time.Duration
	// MaxWait caps how long a long-polled request is held. Default: 30s.
	MaxWait time.Duration
	// ReapEvery is how often expired leases are looked for. Default: LeaseTTL/4.
	ReapEvery time.Duration
	// MaxAttempts bounds how many attempts a preempted job gets (a spot
	// interruption requeues it as a new attempt). Default: 3.
	MaxAttempts int
	// Auth makes every request carry a token (see auth.go): all but
	// /healthz, the dashboard's static files and /login. Default: false,
	// every request is served, for library users and tests on a private
	// listener; `slipway server` and `slipway up` turn it on.
	Auth bool
	// SecretsKey is the 32-byte AES-256 key that seals the secret values
	// jobs are launched with (see secrets.go). Default: none; jobs then take
	// secrets by reference only.
	SecretsKey []byte
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = 30 * time.Second
	}
	if c.MaxWait <= 0 {
		c.MaxWait = 30 * time.Second
	}
	if c.ReapEvery <= 0 {
		c.ReapEvery = c.LeaseTTL / 4
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 3
	}
	return c
}

// Server serves the API. It is an http.Handler; Run runs its background work.
type Server struct {
	cfg     Config
	store   store.Store
	log     *slog.Logger
	mux     *http.ServeMux
	handler http.Handler // mux, behind requireTokens when cfg.Auth
	work    *signal      // fires when a job may have become claimable
	changes *signal      // fires when any job changed or logged
	turn    atomic.Uint64
	waiting atomic.Int64 // claims waiting for work now
	touched sync.Map     // agent id → when its last-seen time was last recorded
	queues  sync.Map     // queue name → cachedQueue, for claims
	admit   admission.Checker
	secrets *secrets

	drainOnce sync.Once
	draining  chan struct{} // closed by Drain: long polls answer at once
}

// New returns a Server for cfg.
func New(cfg Config) (*Server, error) {
	cfg = cfg.WithDefaults()
	if cfg.Store == nil {
		return nil, errors.New("server: config: Store is required")
	}
	s := &Server{cfg: cfg, store: cfg.Store, log: cfg.Logger, work: newSignal(), changes: newSignal(), draining: make(chan struct{})}
	sec, err := newSecrets(cfg.SecretsKey)
	if err != nil {
		return nil, err
	}
	s.secrets = sec
	dash, err := dashboard.New(dashboard.Config{Store: cfg.Store, Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("creating dashboard: %w", err)
	}
	s.routes(dash)
	s.handler = s.mux
	if cfg.Auth {
		s.handler = s.requireTokens(s.mux)
	}
	return s, nil
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Drain makes every long poll in flight, and every one that comes later,
// answer at once with what it has (a claim: no job), so that an
// http.Server's Shutdown is not held up by them. Call it before Shutdown.
func (s *Server) Drain() { s.drainOnce.Do(func() { close(s.draining) }) }

// Run expires the leases of agents that stopped renewing them, until ctx is
// done. It takes nothing back during its first LeaseTTL: a server that was
// down (restarted, or killed) for longer than a lease finds every lease in
// its store expired, though their agents are alive and renew them as soon
// as they reach it again. Stopping Run releases nothing.
func (s *Server) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.ReapEvery)
	defer t.Stop()
	first := time.Now().Add(s.cfg.LeaseTTL)
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			s.forgetTouches(now)
			if now.Before(first) {
				continue
			}
			ids, err := s.store.ExpireLeases(ctx, now)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				s.log.Error("expiring leases", "err", err)
				continue
			}
			if len(ids) > 0 {
				s.log.Info("returned jobs of expired leases to their queues", "jobs", ids)
				s.work.fire()
				s.changes.fire()
			}
		}
	}
}

// forgetTouches drops the agents whose last-seen time was recorded
// touchEvery ago or more: their next claim or renewal records it again
// anyway, and agents that are gone for good are not kept for ever.
func (s *Server) forgetTouches(now time.Time) {
	s.touched.Range(func(agent, at any) bool {
		if now.Sub(at.(time.Time)) >= touchEvery {
			s.touched.Delete(agent)
		}
		return true
	})
}

// Package agent claims jobs from a Slipway server and runs them: claim →
// (build) → submit → watch → report, holding each claim as a renewed lease.
// After a restart it re-attaches to runs it had started, by their external
// id, rather than start them again.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/client"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/runner"
)

// Config configures an Agent.
type Config struct {
	// Client reaches the server. Required.
	Client *client.Client
	// Queues are the queues to serve, tried round-robin. Required.
	Queues []string
	// Runner returns the runner for a queue's jobs. Required.
	Runner func(q job.Queue) (runner.Runner, error)
	// Name identifies the agent to people. Default: the host name.
	Name string
	// MaxJobs caps how many jobs run at once; -1 means no cap. Default: 1.
	MaxJobs int
	// ClaimWait is how long one claim waits on the server for work. Default: 20s.
	ClaimWait time.Duration
	// Logger receives the agent's logs. Default: slog.Default().
	Logger *slog.Logger
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Name == "" {
		c.Name, _ = os.Hostname()
	}
	if c.MaxJobs == 0 {
		c.MaxJobs = 1
	}
	if c.ClaimWait <= 0 {
		c.ClaimWait = 20 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports the first thing wrong with c.
func (c Config) Validate() error {
	switch {
	case c.Client == nil:
		return errors.New("agent: config: Client is required")
	case len(c.Queues) == 0:
		return fmt.Errorf("%w: agent: at least one queue is required (-q QUEUE)", job.ErrInvalid)
	case c.Runner == nil:
		return errors.New("agent: config: Runner is required")
	case c.MaxJobs < -1:
		return fmt.Errorf("%w: max_jobs: %d: want a positive number, or -1 for no limit", job.ErrInvalid, c.MaxJobs)
	}
	return nil
}

// Agent claims and runs jobs until its context ends.
type Agent struct {
	cfg Config
	api *client.Client
	log *slog.Logger
	id  string
}

// New returns an Agent for cfg.
func New(cfg Config) (*Agent, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Agent{cfg: cfg, api: cfg.Client, log: cfg.Logger, id: job.NewID("a-")}, nil
}

// ID returns the id the agent claims under.
func (a *Agent) ID() string { return a.id }

// Run registers the agent and claims jobs until ctx ends, then waits for the
// jobs it runs to let go. Jobs still running then keep their leases until
// they expire, so that the next agent re-attaches to them.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.register(ctx); err != nil {
		return err
	}
	var slots chan struct{}
	if a.cfg.MaxJobs > 0 {
		slots = make(chan struct{}, a.cfg.MaxJobs)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	failures := 0
	for turn := 0; ctx.Err() == nil; turn++ {
		if slots != nil {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
		}
		release := func() {
			if slots != nil {
				<-slots
			}
		}
		c, err := a.api.Claim(ctx, api.Claim{Agent: a.id, Queues: rotate(a.cfg.Queues, turn), Wait: a.cfg.ClaimWait})
		if err != nil {
			release()
			if errors.Is(err, job.ErrNoJob) || ctx.Err() != nil {
				failures = 0
				continue
			}
			failures++
			a.log.Warn("claiming a job", "err", err, "retry_in", backoff(failures))
			sleep(ctx, backoff(failures))
			continue
		}
		failures = 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer release()
			a.runJob(ctx, c)
		}()
	}
	return nil
}

func (a *Agent) register(ctx context.Context) error {
	for failures := 1; ; failures++ {
		_, err := a.api.RegisterAgent(ctx, job.Agent{ID: a.id, Name: a.cfg.Name, Queues: a.cfg.Queues, MaxJobs: a.cfg.MaxJobs})
		if err == nil {
			a.log.Info("agent registered", "agent", a.id, "queues", a.cfg.Queues, "max_jobs", a.cfg.MaxJobs)
			return nil
		}
		if !client.IsUnreachable(err) || ctx.Err() != nil {
			return fmt.Errorf("registering agent: %w", err)
		}
		a.log.Warn("server unreachable; retrying", "err", err, "retry_in", backoff(failures))
		sleep(ctx, backoff(failures))
	}
}

// rotate returns qs starting at index turn, so that each claim asks the
// queues in a different order: round-robin across an agent's queues.
func rotate(qs []string, turn int) []string {
	i := turn % len(qs)
	return append(append([]string(nil), qs[i:]...), qs[:i]...)
}

// backoff is the jittered wait after n failures in a row: 100ms doubling
// up to 10s.
func backoff(n int) time.Duration {
	d := 100 * time.Millisecond << min(n, 7)
	d = min(d, 10*time.Second)
	return d/2 + rand.N(d/2)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

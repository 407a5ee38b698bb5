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
	"github.com/slipway-ml/slipway/internal/build"
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
	// Build turns a job's code into an image its queue's resource runs,
	// streaming its output to log. Nil: jobs that need a build fail, saying
	// so.
	Build func(ctx context.Context, q job.Queue, j job.Job, code []byte, log func(string)) (build.Result, error)
	// Name identifies the agent to people. Default: the host name.
	Name string
	// MaxJobs caps how many jobs run at once; -1 means no cap. Default: 1.
	MaxJobs int
	// ClaimWait is how long one claim waits on the server for work. Default: 20s.
	ClaimWait time.Duration
	// Logger receives the agent's logs. Default: slog.Default().
	Logger *slog.Logger
	// ShutdownGrace is how long, once Run's context ends, the agent lets its
	// local jobs (processes, containers) run on to finish before it lets go
	// of them. SageMaker jobs are handed over at once whatever it is: their
	// training job runs on without the agent, and the next agent re-attaches
	// to it. Default: 0, hand everything over at once.
	ShutdownGrace time.Duration
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
	case c.ShutdownGrace < 0:
		return fmt.Errorf("%w: shutdown grace: %v: want 0 or more", job.ErrInvalid, c.ShutdownGrace)
	}
	return nil
}

// Agent claims and runs jobs until its context ends.
type Agent struct {
	cfg   Config
	api   *client.Client
	log   *slog.Logger
	id    string
	renew *renewer
}

// New returns an Agent for cfg.
func New(cfg Config) (*Agent, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, api: cfg.Client, log: cfg.Logger, id: job.NewID("a-")}
	a.renew = newRenewer(a.api, a.id, a.log)
	return a, nil
}

// ID returns the id the agent claims under.
func (a *Agent) ID() string { return a.id }

// Run registers the agent and claims jobs until ctx ends. Then it claims
// no more and shuts down: it hands its SageMaker jobs back to their queues
// at once (a release: the training job runs on, and the next agent
// re-attaches to it without waiting for the lease to expire), lets its
// local jobs run up to ShutdownGrace to finish, hands back those still
// running then, and returns once every job has let go.
//
// A local process cannot be re-attached to: the next agent reports a local
// job handed over while it ran as failed ("lost track"), never runs it twice.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.register(ctx); err != nil {
		return err
	}
	var slots chan struct{}
	if a.cfg.MaxJobs > 0 {
		slots = make(chan struct{}, a.cfg.MaxJobs)
	}
	// Leases are renewed until every job has let go, after ctx ends.
	renewCtx, stopRenewing := context.WithCancel(context.WithoutCancel(ctx))
	renewing := make(chan struct{})
	go func() { defer close(renewing); a.renew.run(renewCtx) }()
	defer func() { stopRenewing(); <-renewing }()
	var wg sync.WaitGroup
	held := &holdings{jobs: map[api.LeaseRef]holding{}}
	defer a.shutdown(&wg, held)
	rf := &refill{a: a, ctx: ctx, slots: slots, held: held, wg: &wg}
	failures := 0
	for ctx.Err() == nil {
		free := 1
		if slots != nil {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
			// Every other free slot joins this claim: one request, and one
			// commit on the server, fills them all.
		more:
			for free < api.MaxClaim {
				select {
				case slots <- struct{}{}:
					free++
				default:
					break more
				}
			}
		}
		release := func(n int) {
			for range n {
				rf.release()
			}
		}
		// The turn is taken once the slots are: refills take turns too.
		turn := int(rf.turn.Add(1) - 1)
		cs, err := a.api.ClaimMany(ctx, api.Claim{Agent: a.id, Queues: rotate(a.cfg.Queues, turn), Wait: a.cfg.ClaimWait, Max: free})
		if err != nil {
			release(free)
			if errors.Is(err, job.ErrNoJob) || ctx.Err() != nil {
				failures = 0
				continue
			}
			failures++
			a.log.Warn("claiming jobs", "err", err, "retry_in", backoff(failures))
			sleep(ctx, backoff(failures))
			continue
		}
		failures = 0
		if len(cs) > free {
			// A server that answers more than asked must not make the
			// agent run more than max_jobs: the rest go straight back.
			a.log.Warn("the server handed out more jobs than asked for; handing the rest back", "asked", free, "got", len(cs))
			for _, c := range cs[free:] {
				a.handOver(refOf(&c.Job), fmt.Sprintf("agent %s had no free slot for it: handed back", a.id))
			}
			cs = cs[:free]
		}
		release(free - len(cs)) // the slots no job came for
		for _, c := range cs {
			rf.start(c)
		}
	}
	return nil
}

// start runs the claimed job c in a goroutine of its own, which frees its
// slot when the job has let go, unless it passed it on to a job claimed
// with its final move (see Claimed). It reports false, starting nothing,
// once the agent shuts down.
func (f *refill) start(c api.Claimed) bool {
	// The job outlives the agent's ctx: shutdown decides when it lets go,
	// and a lost lease ends it with errLeaseLost as the cause.
	jobCtx, stop := context.WithCancelCause(context.WithoutCancel(f.ctx))
	if !f.held.add(leaseOf(&c.Job), holding{resource: c.Queue.Resource, stop: stop}, f.wg) {
		stop(nil)
		return false
	}
	go f.own(jobCtx, stop, &c)
	return true
}

// own runs the claimed job c until it lets go, and hands it over when the
// agent let go of it before its end. It keeps of c only what handing over
// needs, so that the claim (its queue and secrets) can go once the job
// runs: the goroutine lives as long as the run.
//
// Its frame stays small, for it is on the stack all the while the job
// waits (see runJob): no defers, whose records would be, and the hand-over
// in a call of its own. A panic ends the process anyway.
func (f *refill) own(ctx context.Context, stop context.CancelCauseFunc, c *api.Claimed) {
	ref := refOf(&c.Job)
	// A job whose start was refused is left as it is, not handed over.
	if !f.a.runJob(ctx, stop, c, f) && ctx.Err() != nil && !errors.Is(context.Cause(ctx), errStartRefused) {
		f.a.shuttingDown(ref)
	}
	stop(nil)
	if !f.held.remove(api.LeaseRef{Job: ref.id, Token: ref.token}) {
		f.release()
	}
	f.wg.Done()
}

// shuttingDown hands over a job the agent let go of as it shuts down.
func (a *Agent) shuttingDown(ref jobRef) {
	a.handOver(ref, fmt.Sprintf("agent %s shutting down: handed over", a.id))
}

// jobRef names one attempt of a job under the agent's lease: what
// handing it over needs.
type jobRef struct {
	id, queue string
	attempt   int
	token     int64
}

func refOf(j *job.Job) jobRef {
	return jobRef{id: j.ID, queue: j.Queue, attempt: j.Attempt, token: j.Lease.Token}
}

// holding is one job the agent runs, and how to make it let go.
type holding struct {
	resource job.Resource
	stop     context.CancelCauseFunc
	// passed is set when the job's slot went to a job claimed with its
	// final move: it must not free it as it lets go.
	passed bool
}

// holdings are the jobs the agent runs, by lease: a job requeued as it
// ends (preempted) may be claimed again, by a refill of its own final
// move, before its last holding has let go.
type holdings struct {
	mu     sync.Mutex
	jobs   map[api.LeaseRef]holding
	closed bool // the agent shuts down: no job starts any more
}

// leaseOf names the lease under which the agent holds j.
func leaseOf(j *job.Job) api.LeaseRef { return api.LeaseRef{Job: j.ID, Token: j.Lease.Token} }

// add holds the job under lease l, counted in wg, and reports true; false, holding
// nothing, once the agent shuts down. wg is added to under the lock, so
// that once shutdown has closed holdings and waits for wg, no job joins.
func (h *holdings) add(l api.LeaseRef, j holding, wg *sync.WaitGroup) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.jobs[l] = j
	wg.Add(1)
	return true
}

// remove lets go of the job under lease l, and reports whether its slot
// was passed on.
func (h *holdings) remove(l api.LeaseRef) (passed bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	passed = h.jobs[l].passed
	delete(h.jobs, l)
	return passed
}

// pass hands the slot of the job under lease l, which has made its final
// move, to a job claimed with that move; false when the job has let go
// already (its slot is free again) or the agent shuts down.
func (h *holdings) pass(l api.LeaseRef) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	j, ok := h.jobs[l]
	if !ok || j.passed || h.closed {
		return false
	}
	j.passed = true
	h.jobs[l] = j
	return true
}

// close starts no job any more (see add).
func (h *holdings) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
}

// stop makes the jobs that keep match let go, and says how many it asked.
func (h *holdings) stop(match func(job.Resource) bool) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, j := range h.jobs {
		if match(j.resource) {
			j.stop(nil)
			n++
		}
	}
	return n
}

// shutdown hands over the SageMaker jobs at once, gives the others
// ShutdownGrace to finish, then hands them over too, and waits for all.
func (a *Agent) shutdown(wg *sync.WaitGroup, held *holdings) {
	held.close()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	if n := held.stop(func(r job.Resource) bool { return r == job.SageMaker }); n > 0 {
		a.log.Info("shutting down: handing SageMaker jobs over", "jobs", n)
	}
	if a.cfg.ShutdownGrace > 0 {
		t := time.NewTimer(a.cfg.ShutdownGrace)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
		}
	}
	if n := held.stop(func(job.Resource) bool { return true }); n > 0 {
		a.log.Info("shutting down: handing over the jobs still running", "jobs", n, "grace", a.cfg.ShutdownGrace)
	}
	<-done
}

// handOver releases a job the agent let go of before it ended, so that the
// next agent takes it at once. A job that ended meanwhile, or whose lease
// another agent holds, is left as it is (the server answers lease lost).
func (a *Agent) handOver(j jobRef, reason string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for failures := 1; ; failures++ {
		r, err := a.api.Release(ctx, j.id, j.token, reason)
		switch {
		case err == nil:
			a.log.Info("job handed over", "job", j.id, "queue", j.queue, "attempt", j.attempt, "external_id", r.ExternalID)
			return
		case errors.Is(err, job.ErrLeaseLost) || errors.Is(err, job.ErrNotFound):
			return
		case !client.IsUnreachable(err) || ctx.Err() != nil:
			a.log.Warn("handing a job over; its lease will expire instead", "job", j.id, "err", err)
			return
		}
		sleep(ctx, backoff(failures))
	}
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

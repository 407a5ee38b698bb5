package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/runner"
	"github.com/slipway-ml/slipway/internal/store"
)

// Noop is a runner.Runner whose runs end at once, finished: what is left
// of a job's cost when the run itself costs nothing is Slipway's own.
type Noop struct {
	started atomic.Int64
}

var _ runner.Runner = (*Noop)(nil)

// Start implements runner.Runner: the external id is the task's name.
func (n *Noop) Start(_ context.Context, t runner.Task) (string, error) {
	n.started.Add(1)
	return t.Name, nil
}

// Wait implements runner.Runner: the run has already finished.
func (n *Noop) Wait(context.Context, runner.Task, string, runner.Sink) (runner.Result, error) {
	return runner.Result{State: job.Finished, Reason: "no-op"}, nil
}

// Stop implements runner.Runner; there is nothing to stop.
func (n *Noop) Stop(context.Context, string) error { return nil }

// Started counts the runs started.
func (n *Noop) Started() int64 { return n.started.Load() }

// ThroughputConfig is one throughput run.
type ThroughputConfig struct {
	// DSN is a PostgreSQL DSN; empty: a temporary SQLite file.
	DSN string
	// Agents is how many agents claim at once. Default 1.
	Agents int
	// MaxJobs is each agent's max_jobs. Default 8.
	MaxJobs int
	// Jobs is how many jobs are enqueued before the agents start. Default 1000.
	Jobs int
}

func (cfg ThroughputConfig) withDefaults() ThroughputConfig {
	if cfg.Agents <= 0 {
		cfg.Agents = 1
	}
	if cfg.MaxJobs == 0 {
		cfg.MaxJobs = 8
	}
	if cfg.Jobs <= 0 {
		cfg.Jobs = 1000
	}
	return cfg
}

// Rate is how one throughput run went.
type Rate struct {
	// JobsPerSecond counts the jobs finished over the run's wall time.
	JobsPerSecond float64
	// CPUPerJob is the CPU time (user and system) of the whole process,
	// server, agents and store together, over the run, per job: on a
	// shared machine it moves less with the other load than the rate does.
	CPUPerJob time.Duration
}

// Throughput enqueues cfg.Jobs jobs on a fresh store, then starts
// cfg.Agents agents with the Noop runner and times them from their start
// to the last job finished.
func Throughput(ctx context.Context, cfg ThroughputConfig, o Options) (Rate, error) {
	o = o.withDefaults()
	cfg = cfg.withDefaults()
	s, err := startStack(ctx, cfg.DSN, o.Logger)
	if err != nil {
		return Rate{}, err
	}
	defer s.Close()
	// Each run gets its own queue, so that runs on one PostgreSQL database
	// do not see each other's jobs.
	q := job.NewID("tput-")
	if err := s.queue(ctx, api.CreateQueue{Name: q, Resource: job.LocalProcess}); err != nil {
		return Rate{}, err
	}
	if err := fill(ctx, s.Store, q, cfg.Jobs); err != nil {
		return Rate{}, err
	}
	noop := &Noop{}
	cpu0, err := processCPU()
	if err != nil {
		return Rate{}, err
	}
	start := time.Now()
	stop, err := s.agents(ctx, cfg.Agents, q, cfg.MaxJobs, o.Logger, func(job.Queue) (runner.Runner, error) { return noop, nil })
	if err != nil {
		return Rate{}, err
	}
	defer stop()
	if err := waitDrained(ctx, s.Store, q); err != nil {
		return Rate{}, err
	}
	elapsed := time.Since(start)
	cpu1, err := processCPU()
	if err != nil {
		return Rate{}, err
	}
	r := Rate{JobsPerSecond: float64(cfg.Jobs) / elapsed.Seconds(), CPUPerJob: (cpu1 - cpu0) / time.Duration(cfg.Jobs)}
	if got := noop.Started(); got != int64(cfg.Jobs) {
		return r, fmt.Errorf("the agents started %d runs for %d jobs", got, cfg.Jobs)
	}
	return r, nil
}

// StoreThroughput is Throughput without HTTP and without agents: the store
// alone, as the server drives it for agents. cfg.Agents goroutines each
// claim up to cfg.MaxJobs jobs in one ClaimN, then move them together
// through submitting, starting and finished, one Transitions call a step,
// until no job is left. What it measures is the store's share of a job,
// the part of Throughput that HTTP, JSON and the agents come on top of;
// it is also what River's figure counts (workers in the process that
// holds the database connection).
func StoreThroughput(ctx context.Context, cfg ThroughputConfig) (Rate, error) {
	cfg = cfg.withDefaults()
	st, cleanup, err := openStore(ctx, cfg.DSN)
	if err != nil {
		return Rate{}, err
	}
	defer cleanup()
	defer st.Close()
	q := job.NewID("store-")
	if _, err := st.CreateQueue(ctx, job.Queue{Name: q, Resource: job.LocalProcess}); err != nil {
		return Rate{}, fmt.Errorf("creating queue %s: %w", q, err)
	}
	if err := fill(ctx, st, q, cfg.Jobs); err != nil {
		return Rate{}, err
	}
	cpu0, err := processCPU()
	if err != nil {
		return Rate{}, err
	}
	start := time.Now()
	var (
		wg       sync.WaitGroup
		finished atomic.Int64
		mu       sync.Mutex
		first    error
	)
	for w := range cfg.Agents {
		wg.Go(func() {
			err := drainStore(ctx, st, store.ClaimRequest{Agent: fmt.Sprintf("store-%d", w), Queues: []string{q}, TTL: time.Minute}, cfg.MaxJobs, &finished)
			if err != nil {
				mu.Lock()
				first = cmpErr(first, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu1, err := processCPU()
	if err != nil {
		return Rate{}, err
	}
	if first != nil {
		return Rate{}, first
	}
	if got := finished.Load(); got != int64(cfg.Jobs) {
		return Rate{}, fmt.Errorf("the store finished %d jobs of %d", got, cfg.Jobs)
	}
	return Rate{JobsPerSecond: float64(cfg.Jobs) / elapsed.Seconds(), CPUPerJob: (cpu1 - cpu0) / time.Duration(cfg.Jobs)}, nil
}

// drainStore claims up to n jobs at a time for req and moves them to the
// end, as an agent's requests would, until the queue is empty.
func drainStore(ctx context.Context, st store.Store, req store.ClaimRequest, n int, finished *atomic.Int64) error {
	steps := []job.State{job.Submitting, job.Starting, job.Finished}
	for {
		js, err := st.ClaimN(ctx, req, n)
		if errors.Is(err, job.ErrNoJob) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("claiming: %w", err)
		}
		us := make([]store.Update, len(js))
		for _, to := range steps {
			for i, j := range js {
				us[i] = store.Update{JobID: j.ID, Token: j.Lease.Token, To: to, Reason: "bench", ExternalID: j.ID}
			}
			ms, err := st.Transitions(ctx, us)
			if err != nil {
				return fmt.Errorf("moving %d jobs to %s: %w", len(us), to, err)
			}
			for _, m := range ms {
				if m.Err != nil {
					return fmt.Errorf("moving a job to %s: %w", to, m.Err)
				}
			}
		}
		finished.Add(int64(len(js)))
	}
}

// processCPU is the CPU time, user and system, this process has used.
func processCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("reading the process's CPU time: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// fill enqueues n jobs straight into the store, from a few goroutines.
func fill(ctx context.Context, st store.Store, q string, n int) error {
	const workers = 8
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	spec := job.Spec{Entrypoint: []string{"true"}}
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				if _, err := st.Enqueue(ctx, job.Job{ID: job.NewSortedID("j-"), Queue: q, Spec: spec}, nil); err != nil {
					mu.Lock()
					first = cmpErr(first, fmt.Errorf("enqueueing: %w", err))
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// waitDrained returns once no job of q is queued or held.
func waitDrained(ctx context.Context, st store.Store, q string) error {
	states := []job.State{job.Queued, job.Claimed, job.Building, job.Submitting, job.Starting, job.Running}
	for {
		busy := false
		for _, s := range states {
			js, err := st.ListJobs(ctx, store.JobFilter{Queue: q, State: s, Limit: 1})
			if err != nil {
				return fmt.Errorf("listing %s jobs: %w", s, err)
			}
			if len(js) > 0 {
				busy = true
				break
			}
		}
		if !busy {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// River's published figure on PostgreSQL on a laptop, jobs per second.
const riverJobsPerSecond = 46000

// throughputTarget is the goal on SQLite on two cores, jobs per second.
const throughputTarget = 5000

func throughputMeasure(ctx context.Context, o Options) ([]Result, error) {
	// At 5,000 jobs a second, 1,000 jobs last a fifth of a second, which
	// the agents' start and their first claims fill: 5,000 a run measure
	// the steady state the rate is about.
	jobs, reps := 5000, 1
	if o.Full {
		jobs, reps = 10000, 3
	}
	type backend struct{ name, dsn string }
	backends := []backend{{"sqlite", ""}}
	if o.Postgres != "" {
		backends = append(backends, backend{"postgres", o.Postgres})
	}
	type run struct {
		agents  int
		maxJobs int  // each agent's; 8 unless said
		alone   bool // the store alone: StoreThroughput
	}
	// Agents with 8 slots each, as in every earlier report, then agents with
	// 64: an agent following SageMaker jobs holds many at once, and more
	// slots mean fewer, larger requests and commits per job.
	runs := []run{{1, 8, false}, {4, 8, false}, {16, 8, false}, {1, 64, false}, {4, 64, false}, {16, 64, false}, {16, 8, true}}
	var out []Result
	for _, b := range backends {
		for _, ru := range runs {
			cfg := ThroughputConfig{DSN: b.dsn, Agents: ru.agents, MaxJobs: ru.maxJobs, Jobs: jobs}
			c := fmt.Sprintf("%s, %s", b.name, plural(ru.agents, "agent", "agents"))
			if ru.maxJobs != 8 {
				c += fmt.Sprintf(", max_jobs %d", ru.maxJobs)
			}
			note := fmt.Sprintf("%d jobs per run, max_jobs %d per agent, no-op runner, claims and reports over HTTP", jobs, ru.maxJobs)
			who := "server, agents and store all run in it"
			if ru.alone {
				c = fmt.Sprintf("%s, the store alone, %d workers", b.name, ru.agents)
				note = fmt.Sprintf("%d jobs per run; no HTTP, no agents: each worker claims 8 jobs and moves them together through the same four writes", jobs)
				who = "only the store runs in it"
			}
			cpuNote := "the process's CPU time over the run, per job (" + who
			if b.name == "postgres" {
				cpuNote += "; PostgreSQL's own processes are not counted"
			}
			cpuNote += "): 5,000 jobs/s on 2 cores allows 400 µs"
			var rates, cpus []float64
			for range reps {
				var r Rate
				var err error
				if ru.alone {
					r, err = StoreThroughput(ctx, cfg)
				} else {
					r, err = Throughput(ctx, cfg, o)
				}
				if err != nil {
					return out, fmt.Errorf("%s: %w", c, err)
				}
				rates = append(rates, r.JobsPerSecond)
				cpus = append(cpus, float64(r.CPUPerJob)/float64(time.Microsecond))
			}
			res := compare(summarize(Result{Measure: "throughput", Case: c, Unit: "jobs/s", Note: note}, rates),
				riverJobsPerSecond, "River, Postgres, laptop", false)
			if b.name == "sqlite" && !ru.alone {
				res = target(res, ">= 5000 jobs/s", res.Median >= throughputTarget)
			}
			out = append(out, res, summarize(Result{Measure: "throughput", Case: c + ", CPU per job", Unit: "µs CPU/job",
				Note: cpuNote}, cpus))
		}
	}
	if o.Postgres == "" {
		out = append(out, skipped("throughput", "postgres", "jobs/s", "no PostgreSQL DSN (--postgres or SLIPWAY_TEST_POSTGRES)"))
	}
	return out, nil
}

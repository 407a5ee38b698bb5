package bench

import (
	"context"
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
	if cfg.Agents <= 0 {
		cfg.Agents = 1
	}
	if cfg.MaxJobs == 0 {
		cfg.MaxJobs = 8
	}
	if cfg.Jobs <= 0 {
		cfg.Jobs = 1000
	}
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
	jobs, reps := 1000, 1
	if o.Full {
		jobs, reps = 5000, 3
	}
	type backend struct{ name, dsn string }
	backends := []backend{{"sqlite", ""}}
	if o.Postgres != "" {
		backends = append(backends, backend{"postgres", o.Postgres})
	}
	var out []Result
	for _, b := range backends {
		for _, agents := range []int{1, 4, 16} {
			var rates, cpus []float64
			for range reps {
				r, err := Throughput(ctx, ThroughputConfig{DSN: b.dsn, Agents: agents, Jobs: jobs}, o)
				if err != nil {
					return out, fmt.Errorf("%s, %d agents: %w", b.name, agents, err)
				}
				rates = append(rates, r.JobsPerSecond)
				cpus = append(cpus, float64(r.CPUPerJob)/float64(time.Microsecond))
			}
			c := fmt.Sprintf("%s, %s", b.name, plural(agents, "agent", "agents"))
			res := summarize(Result{Measure: "throughput", Case: c, Unit: "jobs/s",
				Note: fmt.Sprintf("%d jobs per run, max_jobs 8 per agent, no-op runner, claims and reports over HTTP", jobs)}, rates)
			res = compare(res, riverJobsPerSecond, "River, Postgres, laptop", false)
			if b.name == "sqlite" {
				res = target(res, ">= 5000 jobs/s", res.Median >= throughputTarget)
			}
			out = append(out, res, summarize(Result{Measure: "throughput", Case: c + ", CPU per job", Unit: "µs CPU/job",
				Note: "the process's CPU time (server, agents and store, all in it) over the run, per job: 5,000 jobs/s on 2 cores allows 400 µs"}, cpus))
		}
	}
	if o.Postgres == "" {
		out = append(out, skipped("throughput", "postgres", "jobs/s", "no PostgreSQL DSN (--postgres or SLIPWAY_TEST_POSTGRES)"))
	}
	return out, nil
}

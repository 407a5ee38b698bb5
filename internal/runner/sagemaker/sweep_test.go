package sagemaker

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/runner"
	"github.com/slipway-ml/slipway/internal/runner/runnertest"
)

// sweptSetup follows sweepMin jobs that never end on their own, with
// sweeps every millisecond and PollMax at 5 ms, but an hour between the
// describes of a job that relies on sweeps; it returns once every job
// relies on them. cancel ends the Wait of names[i]; ended receives the
// result of names[0]'s Wait.
type swept struct {
	f      *listingFleet
	r      *Runner
	names  []string
	ctx    context.Context
	cancel []context.CancelFunc
	waits  []chan error
	ended  chan runner.Result
}

func setupSwept(t *testing.T, f *listingFleet, log *slog.Logger, tune func(r *Runner)) *swept {
	t.Helper()
	names := jobNames(sweepMin)
	f.fleet = newFleet(names, 1<<30)
	f.modified = map[string]time.Time{}
	created := time.Now().Add(-time.Hour)
	for _, n := range names {
		f.modified[n] = created
	}
	r := newRunner(Config{PollMin: time.Millisecond, PollMax: 5 * time.Millisecond, SweepEvery: time.Millisecond,
		Logger: log}.WithDefaults(), f, f)
	r.poller.slowCheck = time.Hour
	if tune != nil {
		tune(r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	s := &swept{f: f, r: r, names: names, ctx: ctx, ended: make(chan runner.Result, 1)}
	for i, n := range names {
		c, stop := context.WithCancel(ctx)
		t.Cleanup(stop)
		done := make(chan error, 1)
		s.cancel, s.waits = append(s.cancel, stop), append(s.waits, done)
		go func() {
			res, err := r.Wait(c, waitTask(n), n, &runnertest.Sink{})
			if i == 0 && err == nil {
				s.ended <- res
			}
			done <- err
		}()
	}
	for slowJobs(r.poller) < len(names) {
		if ctx.Err() != nil {
			t.Fatalf("%d of %d jobs rely on sweeps before the test's deadline", slowJobs(r.poller), len(names))
		}
		time.Sleep(time.Millisecond)
	}
	return s
}

// slowJobs counts the jobs waiting in p's schedule that rely on sweeps.
func slowJobs(p *poller) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, j := range p.due {
		if j.slow {
			n++
		}
	}
	return n
}

// checkNotSlow fails t for every job waiting in p's schedule that still
// relies on sweeps, or waits longer than PollMax for its next describe.
func checkNotSlow(t *testing.T, p *poller, pollMax time.Duration) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	limit := time.Now().Add(pollMax)
	for _, j := range p.due {
		if j.slow || j.nextCheck.After(limit) {
			t.Errorf("%s: slow %t, next describe in %v; want not slow, within PollMax %v", j.name, j.slow, time.Until(j.nextCheck).Round(time.Millisecond), pollMax)
		}
	}
}

// complete makes name complete at its next describe, without a sweep
// seeing it.
func (f *listingFleet) complete(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.left[name] = 1
}

// TestJobsPollOnTheirOwnBelowSweepMin checks that once the jobs followed
// drop below sweepMin, so that no sweep runs, the jobs that relied on
// sweeps are described within PollMax again rather than every slowCheck.
func TestJobsPollOnTheirOwnBelowSweepMin(t *testing.T) {
	t.Parallel()
	s := setupSwept(t, &listingFleet{}, nil, nil)
	last := len(s.names) - 1
	s.cancel[last]()
	if err := <-s.waits[last]; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled Wait: got %v, want context.Canceled", err)
	}
	checkNotSlow(t, s.r.poller, s.r.cfg.PollMax)
	s.f.complete(s.names[0])
	s.checkFinished(t)
}

// checkFinished waits for names[0]'s Wait and checks that it finished.
func (s *swept) checkFinished(t *testing.T) {
	t.Helper()
	if err := <-s.waits[0]; err != nil {
		t.Fatalf("%s: Wait: %v", s.names[0], err)
	}
	if res := <-s.ended; res.State != job.Finished {
		t.Errorf("%s: got %s (%s), want %s", s.names[0], res.State, res.Reason, job.Finished)
	}
}

package sagemaker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/logtest"
	"github.com/slipway-ml/slipway/internal/runner"
	"github.com/slipway-ml/slipway/internal/runner/runnertest"
)

// swept is what setupSwept returns: cancel[i] ends the Wait of names[i],
// waits[i] receives its error, ended the result of names[0]'s Wait.
type swept struct {
	f      *listingFleet
	r      *Runner
	names  []string
	ctx    context.Context
	cancel []context.CancelFunc
	waits  []chan error
	ended  chan runner.Result
}

// setupSwept follows sweepMin jobs of f that never end on their own, with
// sweeps every millisecond and PollMax at 5 ms, but an hour between the
// describes of a job that relies on sweeps; tune may change the runner
// before it follows them. It returns once every job relies on sweeps.
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

// TestSweepsListOnlyNamesLikeTheFollowedJobs checks that sweeps ask only
// for the training jobs whose names contain what every followed job's
// name shares, so that the other jobs of a busy account are not listed.
func TestSweepsListOnlyNamesLikeTheFollowedJobs(t *testing.T) {
	t.Parallel()
	f := &listingFleet{}
	s := setupSwept(t, f, nil, nil)
	f.mu.Lock()
	for i := range 300 {
		f.modified[fmt.Sprintf("someone-elses-job-%d", i)] = time.Now()
	}
	base := f.lists
	f.mu.Unlock()
	for {
		f.mu.Lock()
		lists := f.lists
		f.mu.Unlock()
		if lists >= base+2 {
			break
		}
		if s.ctx.Err() != nil {
			t.Fatal("no sweep before the test's deadline")
		}
		time.Sleep(time.Millisecond)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for name, n := range f.listed {
		if strings.HasPrefix(name, "someone-elses-job-") {
			t.Errorf("%s: listed %d times, want never: it shares nothing with the followed jobs' names", name, n)
		}
	}
	got := f.contains[len(f.contains)-1]
	if len(got) < minShared {
		t.Fatalf("NameContains: got %q, want a part every followed name shares", got)
	}
	for _, n := range s.names {
		if !strings.Contains(n, got) {
			t.Errorf("NameContains %q: %s does not contain it, want every followed job listed", got, n)
		}
	}
}

// TestTooLongSweepPausesSweeps checks that when a sweep finds more jobs
// modified than it may list (a busy shared account), the jobs that relied
// on sweeps poll on their own at once, although the last good sweep is
// recent, sweeps pause rather than spend their pages again and again, and
// the log warns once.
func TestTooLongSweepPausesSweeps(t *testing.T) {
	t.Parallel()
	f := &listingFleet{}
	var logs logtest.Buffer
	s := setupSwept(t, f, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})), func(r *Runner) {
		r.pageGap = 0
		r.poller.stale = time.Hour
	})
	f.mu.Lock()
	f.busy = true
	f.left[s.names[0]] = 1
	f.mu.Unlock()
	s.checkFinished(t)
	// Until the pause ends (half an hour at least here), no sweep.
	f.mu.Lock()
	if f.busyList > sweepPages {
		t.Errorf("ListTrainingJobs calls once the account is busy: got %d, want at most %d (one sweep, then a pause)", f.busyList, sweepPages)
	}
	f.mu.Unlock()
	checkNotSlow(t, s.r.poller, s.r.cfg.PollMax)
	if got := strings.Count(logs.String(), "too many training jobs"); got != 1 {
		t.Errorf("warnings about too many jobs: got %d, want 1; log:\n%s", got, logs.String())
	}
}

// TestStaleSweepsLeaveNoJobSlow checks that when sweeps stop completing
// (here a ListTrainingJobs call that never answers), the jobs that relied
// on them poll on their own once the last sweep is stale.
func TestStaleSweepsLeaveNoJobSlow(t *testing.T) {
	t.Parallel()
	f := &listingFleet{}
	s := setupSwept(t, f, nil, func(r *Runner) { r.poller.stale = 50 * time.Millisecond })
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	f.mu.Lock()
	f.hang = hang
	f.left[s.names[0]] = 1
	f.mu.Unlock()
	s.checkFinished(t)
}

// TestSharedPart checks the part of the followed jobs' names sweeps are
// narrowed to.
func TestSharedPart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		names []string
		want  string
	}{
		{nil, ""},
		{[]string{"j-abc-a1"}, "j-abc-a1"},
		{[]string{"j-4k2m9q-a1", "j-77zzpx-a1", "j-0b1c2d-a1"}, "-a1"},
		{[]string{"train-q1-a1", "train-q1-a2", "train-q1-a13"}, "train-q1-a"},
		{[]string{"j-x-a1", "nightly-a2"}, "-a"},
		{[]string{"abc", "xyz"}, ""},
		{[]string{"ab-x", "b-y"}, "b-"},
	} {
		if got := sharedPart(tc.names); got != tc.want {
			t.Errorf("sharedPart(%q): got %q, want %q", tc.names, got, tc.want)
		}
	}
}

// FuzzSharedPart checks that every name contains the part found, and that
// it is as long as the longest of the first name's parts they all share.
func FuzzSharedPart(f *testing.F) {
	f.Add("j-4k2m9q-a1", "j-77zzpx-a1", "nightly-a2")
	f.Add("", "a", "ab")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		names := []string{a, b, c}
		got := sharedPart(names)
		if got != "" && len(got) < minShared {
			t.Fatalf("sharedPart(%q): got %q, shorter than %d", names, got, minShared)
		}
		for _, n := range names {
			if !strings.Contains(n, got) {
				t.Fatalf("sharedPart(%q): got %q, not in %q", names, got, n)
			}
		}
		for i := range len(a) {
			for k := i + len(got) + 1; k <= len(a); k++ {
				if strings.Contains(b, a[i:k]) && strings.Contains(c, a[i:k]) && k-i >= minShared {
					t.Fatalf("sharedPart(%q): got %q, but all share the longer %q", names, got, a[i:k])
				}
			}
		}
	})
}

package sagemaker

import (
	"container/heap"
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/runner"
)

// poller follows every training job a runner waits on from one loop: Wait
// registers its job and blocks on a channel, and the loop makes each job's
// DescribeTrainingJob and CloudWatch Logs calls when they are due, at most
// Config.PollConcurrency at a time, and hands each job its states, lines
// and end. An agent that follows thousands of jobs then holds thousands of
// small records and blocked goroutines with small stacks, not thousands of
// goroutines deep in the SDK; and its calls are bounded however many jobs
// come due together. While many jobs are followed, sweeps (sweep.go) tell
// it which training jobs changed, so that those that did not are not
// described again and again.
//
// The loop runs only while some job is followed.
type poller struct {
	sem chan struct{} // one token per call in flight
	log *slog.Logger
	// sweep lists the jobs modified since a time (see sweep.go); nil, or
	// sweepEvery <= 0: no sweeps.
	sweep      func(ctx context.Context, since time.Time, nameContains string) (map[string]string, error)
	sweepEvery time.Duration
	sweepMin   int
	slowCheck  time.Duration // between two describes of a training job while sweeps work
	pollMax    time.Duration // the longest a job that does not rely on sweeps waits for a describe
	// stale is how long after the last complete sweep a job may still
	// rely on sweeps; past it, every job polls on its own again.
	stale time.Duration
	// pause spaces sweeps out after one found more jobs modified than it
	// may list (a busy shared account): the jobs poll on their own
	// meanwhile.
	pause *backoff

	mu       sync.Mutex
	jobs     map[*tracked]struct{} // every job followed
	due      schedule              // jobs waiting for their next step, soonest first
	running  bool                  // the loop is running
	inflight int                   // steps and sweeps running now
	wake     chan struct{}

	sweeping  bool
	sweepAt   time.Time // when the next sweep is due
	sweepFrom time.Time // the next sweep lists the jobs modified after this
	swept     time.Time // when the last complete sweep ended; zero: none since the loop started
	warned    bool      // a sweep failed for good once, and the log says so
	warnedBig bool      // a sweep listed too many jobs once, and the log says so
	anySlow   bool      // some job may rely on sweeps (slow)
}

func newPoller(concurrency int, log *slog.Logger) *poller {
	return &poller{sem: make(chan struct{}, max(concurrency, 1)), log: log, wake: make(chan struct{}, 1),
		jobs: map[*tracked]struct{}{}, sweepMin: sweepMin}
}

// tracked is one job Wait follows: what it has reported so far and when
// its next calls are due.
type tracked struct {
	// ctx is the waiting Wait's context, kept here because the calls for
	// the job are made on the poller's behalf while Wait blocks: ending it
	// cuts them short, and Wait removes the job before it returns.
	ctx  context.Context
	r    *Runner
	name string
	// id, queue and attempt name the job in the log (see logger).
	id, queue string
	attempt   int
	sink      runner.Sink
	done      chan ended // receives the job's end, once

	at    time.Time // when the next step is due
	index int       // in the schedule; -1 while not in it

	// Set by the step running the job; no two steps of a job run at once.
	described bool   // the first DescribeTrainingJob answered
	removed   bool   // Wait has returned: drop the job (guarded by poller.mu)
	hurried   bool   // Stop was asked while a step ran (guarded by poller.mu)
	known     string // last as of the end of its last step (guarded by poller.mu)
	slow      bool   // nextCheck is slowCheck away, relying on sweeps
	reported  job.State
	seen      int    // SecondaryStatusTransitions already noted
	last      string // TrainingJobStatus/SecondaryStatus last seen
	status    *backoff
	nextCheck time.Time // when DescribeTrainingJob is due
	running   bool      // the job trains: its logs are read
	logs      *logFollower
}

// ended is how a followed job ended, or why it could not be followed.
type ended struct {
	res runner.Result
	err error
}

// follow registers j and runs the loop if it is not running.
func (p *poller) follow(j *tracked) {
	p.mu.Lock()
	p.jobs[j] = struct{}{}
	heap.Push(&p.due, j)
	if !p.running {
		p.running = true
		now := time.Now()
		p.sweepAt, p.sweepFrom, p.swept = now, now.Add(-sweepOverlap), time.Time{}
		go p.run()
	}
	p.mu.Unlock()
	p.poke()
}

// forget removes j, whose Wait's context ended, and hands Wait err unless
// j's end was handed to it already.
func (p *poller) forget(j *tracked, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.jobs[j]; !ok {
		return
	}
	j.removed = true
	delete(p.jobs, j)
	j.done <- ended{err: err}
	if j.index >= 0 {
		heap.Remove(&p.due, j.index)
	}
	// Fewer jobs than sweepMin: no sweep runs, the others poll on their own.
	if p.settleLocked(time.Now()) {
		p.poke()
	}
}

// hurry makes every followed job named name describe itself at once and
// start its backoff over: it was asked to stop, and Wait should see it
// end without waiting out a long poll interval.
func (p *poller) hurry(name string) {
	p.mu.Lock()
	for j := range p.jobs {
		if j.name == name {
			p.hurryLocked(j)
		}
	}
	p.mu.Unlock()
	p.poke()
}

// hurryLocked hurries j now if it waits in the schedule, else once its
// running step ends. Called with mu held.
func (p *poller) hurryLocked(j *tracked) {
	if j.index < 0 {
		j.hurried = true
		return
	}
	j.hurry()
	heap.Fix(&p.due, j.index)
}

// hurry makes j's next step come at once, with a DescribeTrainingJob.
func (j *tracked) hurry() {
	j.hurried = false
	j.status.reset()
	j.nextCheck, j.at = time.Time{}, time.Time{}
}

func (p *poller) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// run takes each job's step when it is due, until no job is followed.
func (p *poller) run() {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		p.mu.Lock()
		if len(p.due) == 0 && p.inflight == 0 {
			p.running = false
			p.mu.Unlock()
			return
		}
		now := time.Now()
		p.settleLocked(now)
		sweeps := p.sweep != nil && p.sweepEvery > 0 && !p.sweeping && len(p.jobs) >= p.sweepMin
		if sweeps && !now.Before(p.sweepAt) {
			p.sweeping = true
			p.inflight++
			from := p.sweepFrom
			if from.IsZero() {
				from = now.Add(-sweepOverlap)
			}
			names := make([]string, 0, len(p.jobs))
			for j := range p.jobs {
				names = append(names, j.name)
			}
			p.mu.Unlock()
			go p.runSweep(from, names)
			continue
		}
		var j *tracked
		wait := time.Hour
		if sweeps {
			wait = p.sweepAt.Sub(now)
		}
		if p.anySlow && !p.swept.IsZero() {
			wait = min(wait, p.swept.Add(p.stale).Sub(now)) // when the slow jobs must poll on their own
		}
		if len(p.due) > 0 {
			if d := p.due[0].at.Sub(now); d > 0 {
				wait = min(wait, d)
			} else {
				j = heap.Pop(&p.due).(*tracked)
				p.inflight++
			}
		}
		p.mu.Unlock()
		if j != nil {
			p.sem <- struct{}{}
			go p.step(j)
			continue
		}
		t.Reset(wait)
		select {
		case <-t.C:
		case <-p.wake:
		}
	}
}

// step runs one round of j's calls and puts j back on the schedule, or
// hands Wait its end.
func (p *poller) step(j *tracked) {
	e, over := j.r.advance(j)
	<-p.sem
	p.mu.Lock()
	p.inflight--
	switch {
	case j.removed:
	case over:
		delete(p.jobs, j)
		j.done <- e
	default:
		j.known = j.last
		if j.hurried {
			j.hurry()
		}
		p.anySlow = p.anySlow || j.slow
		heap.Push(&p.due, j)
	}
	// The job may have relied on sweeps that no longer run or are no
	// longer fresh (fewer jobs followed now, say): it polls on its own.
	p.settleLocked(time.Now())
	p.mu.Unlock()
	p.poke()
}

// runSweep lists the jobs modified since from whose names contain what
// every name in names shares, and hurries every followed job whose status
// the list shows changed. When sweeps fail for a while, or list too many
// jobs, the jobs that relied on them poll on their own again.
func (p *poller) runSweep(from time.Time, names []string) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), p.stale+time.Minute)
	seen, err := p.sweep(ctx, from, sharedPart(names))
	cancel()
	p.mu.Lock()
	now := time.Now()
	p.sweeping = false
	p.inflight--
	p.sweepAt = now.Add(p.sweepEvery)
	switch {
	case err == nil:
		p.swept, p.sweepFrom = now, start.Add(-sweepOverlap)
		p.pause.reset()
		for j := range p.jobs {
			if cur, ok := seen[j.name]; ok && j.known != "" && cur != j.known {
				p.hurryLocked(j)
			}
		}
	case errors.Is(err, errSweepTooLong):
		// A busy account: sweeps would spend their pages for nothing every
		// time. Stop them for a while; the jobs poll on their own, and the
		// next sweep lists only what changes from then on.
		d := p.pause.next()
		p.sweepAt, p.swept, p.sweepFrom = now.Add(d), time.Time{}, time.Time{}
		if !p.warnedBig {
			p.warnedBig = true
			p.log.Warn("too many training jobs modified in the account for sweeps; every job is described on its own, which costs more DescribeTrainingJob calls, and sweeps are tried again later",
				"pages", sweepPages, "retry_in", d)
		} else {
			p.log.Info("too many training jobs modified in the account for sweeps; trying again later", "retry_in", d)
		}
	default:
		if errorCode(err) != "" && !retryable(err) && !p.warned {
			// Likely a role without sagemaker:ListTrainingJobs: say so once.
			p.warned = true
			p.log.Warn("cannot list training jobs; every job is described on its own, which costs more DescribeTrainingJob calls", "err", err)
		}
		p.log.Debug("listing the training jobs modified", "since", from, "err", err)
	}
	p.settleLocked(now)
	p.mu.Unlock()
	p.poke()
}

// settleLocked makes every job that relies on sweeps poll on its own again
// when sweeps are not fresh (they fail, stopped, or fewer jobs than
// sweepMin are followed): its next describe comes within PollMax, spread
// so that thousands of jobs do not all come at once. A job in a step is
// settled when its step ends. It reports whether any job was. Called with
// mu held.
func (p *poller) settleLocked(now time.Time) bool {
	if !p.anySlow || p.sweepsFreshLocked(now) {
		return false
	}
	p.anySlow = false
	for _, j := range p.due {
		if !j.slow {
			continue
		}
		j.slow = false
		if next := now.Add(jitter(p.pollMax)); next.Before(j.nextCheck) {
			j.nextCheck = next
		}
		if j.nextCheck.Before(j.at) {
			j.at = j.nextCheck
		}
	}
	heap.Init(&p.due)
	return true
}

// sweepsFresh reports whether a sweep completed lately, so that a training
// job may wait slowCheck between its own describes.
func (p *poller) sweepsFresh(now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sweepsFreshLocked(now)
}

func (p *poller) sweepsFreshLocked(now time.Time) bool {
	return p.sweep != nil && p.sweepEvery > 0 && len(p.jobs) >= p.sweepMin &&
		!p.swept.IsZero() && now.Sub(p.swept) < p.stale
}

// schedule is a min-heap of jobs by when their next step is due.
type schedule []*tracked

func (s schedule) Len() int           { return len(s) }
func (s schedule) Less(i, k int) bool { return s[i].at.Before(s[k].at) }
func (s schedule) Swap(i, k int) {
	s[i], s[k] = s[k], s[i]
	s[i].index, s[k].index = i, k
}

func (s *schedule) Push(x any) {
	j := x.(*tracked)
	j.index = len(*s)
	*s = append(*s, j)
}

func (s *schedule) Pop() any {
	old := *s
	n := len(old)
	j := old[n-1]
	old[n-1] = nil
	j.index = -1
	*s = old[:n-1]
	return j
}

package sagemaker

import (
	"container/heap"
	"context"
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
	sweep      func(ctx context.Context, since time.Time) (map[string]string, error)
	sweepEvery time.Duration
	sweepMin   int
	slowCheck  time.Duration // between two describes of a training job while sweeps work

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
	log  *slog.Logger
	sink runner.Sink
	done chan ended // receives the job's end, once

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

// forget removes j, which Wait no longer waits on.
func (p *poller) forget(j *tracked) {
	p.mu.Lock()
	defer p.mu.Unlock()
	j.removed = true
	delete(p.jobs, j)
	if j.index >= 0 {
		heap.Remove(&p.due, j.index)
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
		sweeps := p.sweep != nil && p.sweepEvery > 0 && !p.sweeping && len(p.jobs) >= p.sweepMin
		if sweeps && !now.Before(p.sweepAt) {
			p.sweeping = true
			p.inflight++
			from := p.sweepFrom
			p.mu.Unlock()
			go p.runSweep(from)
			continue
		}
		var j *tracked
		wait := time.Hour
		if sweeps {
			wait = p.sweepAt.Sub(now)
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
		heap.Push(&p.due, j)
	}
	p.mu.Unlock()
	p.poke()
}

// runSweep lists the jobs modified since from and hurries every followed
// job whose status the list shows changed. When sweeps fail for a while,
// the jobs that relied on them poll on their own again.
func (p *poller) runSweep(from time.Time) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), sweepPages*sweepPageGap+time.Minute)
	seen, err := p.sweep(ctx, from)
	cancel()
	p.mu.Lock()
	now := time.Now()
	p.sweeping = false
	p.inflight--
	p.sweepAt = now.Add(p.sweepEvery)
	if err == nil {
		p.swept, p.sweepFrom = now, start.Add(-sweepOverlap)
		for j := range p.jobs {
			if cur, ok := seen[j.name]; ok && j.known != "" && cur != j.known {
				p.hurryLocked(j)
			}
		}
	} else {
		if errorCode(err) != "" && !retryable(err) && !p.warned {
			// Likely a role without sagemaker:ListTrainingJobs: say so once.
			p.warned = true
			p.log.Warn("cannot list training jobs; every job is described on its own, which costs more DescribeTrainingJob calls", "err", err)
		}
		p.log.Debug("listing the training jobs modified", "since", from, "err", err)
		if !p.sweepsFreshLocked(now) {
			for _, j := range p.due {
				if j.slow {
					j.hurry()
				}
			}
			heap.Init(&p.due)
		}
	}
	p.mu.Unlock()
	p.poke()
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
		!p.swept.IsZero() && now.Sub(p.swept) < 3*p.sweepEvery+sweepPages*sweepPageGap
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

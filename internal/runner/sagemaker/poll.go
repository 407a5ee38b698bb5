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
// come due together.
//
// The loop runs only while some job is followed.
type poller struct {
	sem chan struct{} // one token per call in flight

	mu       sync.Mutex
	jobs     map[*tracked]struct{} // every job followed
	due      schedule              // jobs waiting for their next step, soonest first
	running  bool                  // the loop is running
	inflight int                   // steps running now
	wake     chan struct{}
}

func newPoller(concurrency int) *poller {
	return &poller{sem: make(chan struct{}, max(concurrency, 1)), wake: make(chan struct{}, 1), jobs: map[*tracked]struct{}{}}
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
	described bool // the first DescribeTrainingJob answered
	removed   bool // Wait has returned: drop the job (guarded by poller.mu)
	hurried   bool // Stop was asked while a step ran (guarded by poller.mu)
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
		if j.name != name {
			continue
		}
		if j.index < 0 {
			j.hurried = true // its step runs: the step hurries it when done
			continue
		}
		j.hurry()
		heap.Fix(&p.due, j.index)
	}
	p.mu.Unlock()
	p.poke()
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
		var j *tracked
		wait := time.Hour
		if len(p.due) > 0 {
			if d := time.Until(p.due[0].at); d > 0 {
				wait = d
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
		if j.hurried {
			j.hurry()
		}
		heap.Push(&p.due, j)
	}
	p.mu.Unlock()
	p.poke()
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

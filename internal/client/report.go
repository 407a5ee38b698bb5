package client

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/job"
)

// reporter gathers the moves that a client's callers report (an agent's
// jobs, each in its own goroutine) into POST /v1/transitions requests: up
// to maxInFlight requests are on their way at a time, and every move
// reported while they all are goes in the next, sent as soon as one of
// them returns. No timer holds a move back: a lone move is sent at once,
// and moves wait only for requests already on their way, so that under
// load the server gets one request and one commit for many jobs, and an
// idle agent's reports go out as fast as before.
type reporter struct {
	mu      sync.Mutex
	waiting []*report // not yet sent, oldest first
	senders int       // goroutines sending the waiting moves, each one request at a time
}

// maxInFlight bounds the requests of moves on their way at once. With one,
// a move made while a request waits for the server's commit (an fsync)
// waits for it too, then for a commit of its own: an agent with few jobs,
// all in flight, then moved them more slowly than with a request each
// (one agent with max_jobs 8 on SQLite: 567–834 jobs/s against 756–913).
// A second request lets such a move go at once, into the server's next
// group commit; under load both requests still carry many moves.
const maxInFlight = 2

// report is one caller's move, from Report until it is answered.
type report struct {
	ctx  context.Context
	move api.JobTransition
	done chan struct{} // closed once state and err are set

	state job.State
	err   error
}

// Report moves a held job as Transition does, in one request with the
// moves that the client's other callers report at about the same time
// (see reporter), and returns the state the move left the job in. Each
// caller gets its own answer. A caller whose ctx ends before its move is
// sent takes it back; one whose ctx ends while its request is in flight
// returns at once, and the move may have landed, as with Transition.
func (c *Client) Report(ctx context.Context, id string, t api.Transition) (job.State, error) {
	r := &report{ctx: ctx, move: api.JobTransition{Job: id, Transition: t}, done: make(chan struct{})}
	rp := &c.reports
	rp.mu.Lock()
	rp.waiting = append(rp.waiting, r)
	start := rp.senders < maxInFlight
	if start {
		rp.senders++
	}
	rp.mu.Unlock()
	if start {
		go c.sendReports()
	}
	select {
	case <-r.done:
		return r.state, r.err
	case <-ctx.Done():
		rp.mu.Lock()
		rp.waiting = slices.DeleteFunc(rp.waiting, func(w *report) bool { return w == r })
		rp.mu.Unlock()
		return "", fmt.Errorf("moving job %s to %s: %w", id, t.To, ctx.Err())
	}
}

// sendReports sends the waiting moves, up to api.MaxTransitions a request,
// one request at a time, until none waits.
func (c *Client) sendReports() {
	rp := &c.reports
	for {
		rp.mu.Lock()
		n := min(len(rp.waiting), api.MaxTransitions)
		if n == 0 {
			rp.senders--
			rp.mu.Unlock()
			return
		}
		batch := slices.Clone(rp.waiting[:n])
		rp.waiting = slices.Delete(rp.waiting, 0, n)
		rp.mu.Unlock()
		c.sendBatch(batch)
	}
}

// sendBatch sends batch in one request and answers each of its callers.
// The request is cut off only when every one of them has gone.
func (c *Client) sendBatch(batch []*report) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu   sync.Mutex
		left = len(batch)
	)
	ts := make([]api.JobTransition, len(batch))
	for i, r := range batch {
		ts[i] = r.move
		stop := context.AfterFunc(r.ctx, func() {
			mu.Lock()
			defer mu.Unlock()
			if left--; left == 0 {
				cancel()
			}
		})
		defer stop()
	}
	ms, err := c.Transitions(ctx, ts)
	for i, r := range batch {
		switch {
		case err != nil:
			r.err = err
		default:
			r.state, r.err = ms[i].State, MoveError(ms[i])
			if r.err == nil && r.state == "" {
				r.err = fmt.Errorf("moving job %s: the server answered no state", r.move.Job)
			}
		}
		close(r.done)
	}
}

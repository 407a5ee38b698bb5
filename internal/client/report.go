package client

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

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
// idle agent's reports go out as fast as before. A sender yields the
// processor (runtime.Gosched, not a sleep) as it starts and after each
// answer, before it takes its batch: the callers that its answer woke, or
// that started it, are runnable then, and their next moves go together
// rather than the first alone, then the second alone in the other
// request while the rest wait (an agent's jobs make their next moves as
// soon as their last are answered). In the throughput benchmark this took
// requests from 0.74 to 0.32-0.50 a job. One job's moves go in
// order: a move sent after an earlier one of its job (Send's after) goes
// in the same request behind it, or waits for its answer, never in
// another request while it is on its way.
type reporter struct {
	mu      sync.Mutex
	waiting []*report // not yet sent, oldest first
	senders int       // goroutines sending the waiting moves, each one request at a time
	// noClaim is set once the server refused a claim in a request of
	// moves (a server older than api.Transitions.Claim): from then on the
	// client sends none, and its agent claims with its own requests alone.
	noClaim atomic.Bool
	batches int // requests numbered so far (see next)
}

// Refill fills the slots that an agent's jobs free as they end with jobs
// claimed in the same request as their final moves (see
// api.Transitions.Claim), so that a busy agent sends no claim request of
// its own. A request carries one claim, for the Refill of its first final
// move; the final moves of another Refill in it free no slot for it.
type Refill interface {
	// Claim is the claim to send with a request whose final moves free
	// freed slots, if they land; ok false sends none.
	Claim(freed int) (c api.Claim, ok bool)
	// Claimed takes the jobs the claim took, at most as many as freed,
	// the leases of the jobs whose final moves the request carried, in
	// order (a job requeued as it ends may be among those claimed, under
	// a new lease); err says
	// why the claim was refused. It is called once the request is
	// answered, before any caller of its moves gets its answer.
	Claimed(cs []api.Claimed, freed []api.LeaseRef, err error)
}

// maxInFlight bounds the requests of moves on their way at once. With one,
// a move made while a request waits for the server's commit (an fsync)
// waits for it too, then for a commit of its own: an agent with few jobs,
// all in flight, then moved them more slowly than with a request each
// (one agent with max_jobs 8 on SQLite: 567–834 jobs/s against 756–913).
// A second request lets such a move go at once, into the server's next
// group commit; under load both requests still carry many moves. Measured
// again once final moves claimed and starts went ahead (4 runs each,
// medians): one agent, 1210 jobs/s with two against 952 with one, at
// about the same CPU per job; 16 agents, the same rate, 641 against 606
// µs per job; three was no better anywhere.
const maxInFlight = 2

// report is one caller's move, from Send until it is answered.
type report struct {
	ctx    context.Context
	move   api.JobTransition
	refill Refill        // fills the slot a final move frees; nil for none
	after  *report       // an earlier move of the job, which this one must follow; nil for none
	done   chan struct{} // closed once state and err are set

	state job.State
	err   error

	// Under reporter.mu:
	batch   int  // the request it was put in, numbered from 1; 0 while waiting
	settled bool // answered, or taken back: err is set
}

// Pending is a move sent with Send, until it is answered.
type Pending struct {
	c *Client
	r *report
}

// ErrEarlierMoveFailed answers a move sent after an earlier move of its
// job (Send's after) that failed or was taken back: it was not sent, so
// that it never lands without the earlier one. It wraps that move's error.
var ErrEarlierMoveFailed = errors.New("an earlier move of the job failed")

// Send moves a held job as Transition does, in one request with the moves
// that the client's other callers send at about the same time (see
// reporter); Wait gives the state the move left the job in, each caller
// its own answer. The move is queued at once, so that a move of the job
// sent later with this one as its after is never sent before it. A caller
// whose ctx ends before its move is sent takes it back; one whose ctx ends
// while its request is in flight returns at once, and the move may have
// landed, as with Transition. When t moves the job to a terminal state,
// the request that carries it also claims a job for the slot it frees,
// with rf (see Refill); a nil rf claims none.
//
// With after, an earlier move of the same job still on its way, the move
// is sent after it: in the same request, after it, or in a later request
// once it has landed, never in a request while it is in another one still
// on its way. When after fails, or its caller takes it back, the move is
// not sent, and is answered with an error wrapping ErrEarlierMoveFailed
// and after's error. A move that landed in the same request as after
// landed after it; and since both carry the job's token, a refusal of after
// for its lease or scope refuses this one too.
func (c *Client) Send(ctx context.Context, id string, t api.Transition, after *Pending, rf Refill) *Pending {
	if !t.To.Terminal() {
		rf = nil
	}
	r := &report{ctx: ctx, move: api.JobTransition{Job: id, Transition: t}, refill: rf, done: make(chan struct{})}
	if after != nil {
		r.after = after.r
	}
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
	return &Pending{c: c, r: r}
}

// Wait returns the state the move left the job in; the move's ctx ending
// before it is sent takes it back.
func (p *Pending) Wait() (job.State, error) {
	r := p.r
	select {
	case <-r.done:
		return r.state, r.err
	case <-r.ctx.Done():
		rp := &p.c.reports
		rp.mu.Lock()
		if r.batch == 0 && !r.settled {
			rp.waiting = slices.DeleteFunc(rp.waiting, func(w *report) bool { return w == r })
			r.err = fmt.Errorf("moving job %s to %s: %w", r.move.Job, r.move.To, r.ctx.Err())
			r.settled = true
			close(r.done)
		}
		rp.mu.Unlock()
		return "", fmt.Errorf("moving job %s to %s: %w", r.move.Job, r.move.To, r.ctx.Err())
	}
}

// sendReports sends the waiting moves, up to api.MaxTransitions a request,
// one request at a time, until none waits that may go (see Send's after).
func (c *Client) sendReports() {
	rp := &c.reports
	runtime.Gosched() // the caller that started it may have more to send
	for {
		rp.mu.Lock()
		batch, answered := rp.next()
		if len(batch) == 0 && !answered {
			rp.senders--
			rp.mu.Unlock()
			return
		}
		rp.mu.Unlock()
		if len(batch) > 0 {
			c.sendBatch(batch)
			runtime.Gosched() // the callers just answered move on
		}
	}
}

// next takes the next request's moves from those waiting, oldest first:
// each whose earlier move (after) has landed or goes in this request too.
// One whose earlier move is still on its way in another request stays
// waiting; one whose earlier move failed is answered with its error, and
// answered says so. Called with rp.mu held.
func (rp *reporter) next() (batch []*report, answered bool) {
	rp.batches++
	id := rp.batches
	keep := rp.waiting[:0]
	for _, r := range rp.waiting {
		a := r.after
		switch {
		case len(batch) == api.MaxTransitions:
			keep = append(keep, r)
		case a == nil || a.settled && a.err == nil || a.batch == id && !a.settled:
			r.batch = id
			batch = append(batch, r)
		case a.settled:
			r.err = fmt.Errorf("moving job %s to %s: %w: %w", r.move.Job, r.move.To, ErrEarlierMoveFailed, a.err)
			r.settled = true
			close(r.done)
			answered = true
		default:
			keep = append(keep, r)
		}
	}
	clear(rp.waiting[len(keep):])
	rp.waiting = keep
	return batch, answered
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
	req := api.Transitions{Transitions: make([]api.JobTransition, len(batch))}
	for i, r := range batch {
		req.Transitions[i] = r.move
		stop := context.AfterFunc(r.ctx, func() {
			mu.Lock()
			defer mu.Unlock()
			if left--; left == 0 {
				cancel()
			}
		})
		defer stop()
	}
	rf, freed := refillOf(batch)
	if rf != nil && !c.reports.noClaim.Load() {
		if cl, ok := rf.Claim(len(freed)); ok {
			req.Claim = &cl
		}
	}
	out, claimed, err := c.transitionsAndClaim(ctx, req)
	if claimed && err == nil {
		rf.Claimed(out.Claims, freed, itemError(out.ClaimError))
	}
	ms := out.Moves
	c.reports.mu.Lock()
	defer c.reports.mu.Unlock()
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
		r.settled = true
		close(r.done)
	}
}

// refillOf returns the Refill of batch's first final move, and the leases
// of the jobs whose final moves in batch are for it.
func refillOf(batch []*report) (Refill, []api.LeaseRef) {
	var (
		rf    Refill
		freed []api.LeaseRef
	)
	for _, r := range batch {
		if r.refill == nil || rf != nil && r.refill != rf {
			continue
		}
		rf = r.refill
		freed = append(freed, api.LeaseRef{Job: r.move.Job, Token: r.move.Token})
	}
	return rf, freed
}

// transitionsAndClaim sends req, as TransitionsClaim does, and reports
// whether the server took its claim. A server older than the claim in a
// request of moves refuses the whole request as invalid, naming the
// field: then the moves go again without it, and the client sends no
// claim with its moves from then on.
func (c *Client) transitionsAndClaim(ctx context.Context, req api.Transitions) (_ api.Moves, claimed bool, _ error) {
	out, err := c.TransitionsClaim(ctx, req)
	var se *ServerError
	if req.Claim != nil && errors.As(err, &se) && se.Code == "invalid" && strings.Contains(se.Message, `unknown field "claim"`) {
		c.reports.noClaim.Store(true)
		req.Claim = nil
		out, err = c.TransitionsClaim(ctx, req)
	}
	return out, req.Claim != nil, err
}

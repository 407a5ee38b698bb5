package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/runner"
	"github.com/slipway-ml/slipway/internal/server"
)

// requests counts an agent's claims and batches of moves.
type requests struct {
	claims      atomic.Int64 // POST /v1/claims
	claimedSome atomic.Int64 // ... answered with jobs
	batches     atomic.Int64 // POST /v1/transitions
	withClaim   atomic.Int64 // ... that carried a claim
	claimedMost atomic.Int64 // the largest such claim's max
}

func (n *requests) front(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/v1/claims":
			n.claims.Add(1)
			sw := &statusOf{ResponseWriter: w}
			h.ServeHTTP(sw, r)
			if sw.status == http.StatusOK {
				n.claimedSome.Add(1)
			}
			return
		case r.Method == http.MethodPost && r.URL.Path == "/v1/transitions":
			n.batches.Add(1)
			b, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(b))
			var req api.Transitions
			_ = json.Unmarshal(b, &req)
			if req.Claim != nil {
				n.withClaim.Add(1)
				if m := int64(req.Claim.Max); m > n.claimedMost.Load() {
					n.claimedMost.Store(m)
				}
			}
		}
		h.ServeHTTP(w, r)
	})
}

// statusOf notes the status a handler answers.
type statusOf struct {
	http.ResponseWriter
	status int
}

func (s *statusOf) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusOf) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// TestBusyAgentRefillsItsSlotsWithItsFinalMoves checks that while its
// queue has work, an agent claims the jobs that follow in the requests of
// its jobs' final moves, not with claims of its own: one claim request
// fills its slots at first, a few more may come once the queue is empty;
// and that it never runs more than max_jobs at once.
func TestBusyAgentRefillsItsSlotsWithItsFinalMoves(t *testing.T) {
	t.Parallel()
	const maxJobs, jobs = 3, 30
	n := &requests{}
	e := setupBehind(t, server.Config{}, n.front)
	e.queue("q", job.LocalProcess)
	var ids []string
	for range jobs {
		ids = append(ids, e.launch("q", sh("true"), job.Medium).ID)
	}
	g := &gate{open: make(chan struct{}), startedC: make(chan struct{}, jobs)}
	close(g.open)
	e.startAgent([]string{"q"}, maxJobs, g)
	for _, id := range ids {
		if j := e.waitEnd(id); j.State != job.Finished {
			t.Fatalf("job %s: got %s (%s), want finished", id, j.State, j.Reason)
		}
	}
	claims, batches, withClaim := n.claims.Load(), n.batches.Load(), n.withClaim.Load()
	t.Logf("%d jobs: %d claim requests, %d batches of moves, %d of them claiming", jobs, claims, batches, withClaim)
	// One claim at first; then only once a refill finds the queue empty,
	// which frees at most max_jobs slots.
	if claims > 1+maxJobs {
		t.Errorf("claim requests: got %d for %d jobs, want at most %d: the final moves claim the rest", claims, jobs, 1+maxJobs)
	}
	if withClaim == 0 || n.claimedMost.Load() > maxJobs {
		t.Errorf("batches of moves that claim: got %d, the largest for %d jobs; want some, none for more than max_jobs %d", withClaim, n.claimedMost.Load(), maxJobs)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.most > maxJobs || g.started != jobs {
		t.Fatalf("got %d runs, at most %d at once; want %d runs, at most %d at once", g.started, g.most, jobs, maxJobs)
	}
}

// preempter is a runner whose first run ends preempted, and every later
// one finished.
type preempter struct {
	mu   sync.Mutex
	runs int
}

func (p *preempter) Start(_ context.Context, t runner.Task) (string, error) { return t.Name, nil }

func (p *preempter) Wait(context.Context, runner.Task, string, runner.Sink) (runner.Result, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.runs++
	if p.runs == 1 {
		return runner.Result{State: job.Preempted, Reason: "spot capacity reclaimed"}, nil
	}
	return runner.Result{State: job.Finished, Reason: "done"}, nil
}

func (p *preempter) Stop(context.Context, string) error { return nil }

// TestRefillTakesBackItsOwnPreemptedJob checks that a job requeued as its
// final move lands (preempted) and claimed again in that same request, by
// the agent whose slot it frees, runs its next attempt as a job of its
// own: the new attempt and the old one each free their own slot, once,
// so that the agent goes on claiming and stops when told.
func TestRefillTakesBackItsOwnPreemptedJob(t *testing.T) {
	t.Parallel()
	n := &requests{}
	e := setupBehind(t, server.Config{}, n.front)
	// A capped queue: the claim comes after the moves, and so finds the
	// job they requeue.
	one := 1
	if _, err := e.c.CreateQueue(e.ctx, api.CreateQueue{Name: "q", Resource: job.LocalProcess, MaxRunning: &one}); err != nil {
		t.Fatal(err)
	}
	j := e.launch("q", sh("true"), job.Medium)
	stop := e.startAgent([]string{"q"}, 1, &preempter{})
	// Preempted is terminal until the server requeues the job: wait for
	// the end of a later attempt.
	got := e.waitFor(j.ID, "ended a later attempt", func(j job.Job) bool { return j.State.Terminal() && j.Attempt > 1 })
	if got.State != job.Finished || got.Attempt != 2 {
		t.Fatalf("job %s: got %s on attempt %d (%s), want finished on attempt 2", j.ID, got.State, got.Attempt, got.Reason)
	}
	if c := n.claimedSome.Load(); c != 1 {
		t.Errorf("claim requests answered with jobs: got %d, want 1: the second attempt came with the first one's end", c)
	}
	// Another job still runs: the agent's one slot is free again.
	k := e.launch("q", sh("true"), job.Medium)
	if got := e.waitEnd(k.ID); got.State != job.Finished {
		t.Fatalf("the next job: got %s (%s), want finished", got.State, got.Reason)
	}
	stop()
}

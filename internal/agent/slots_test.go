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

// gate is a runner whose runs last until the test opens the gate, and
// which records how many ran at once.
type gate struct {
	open chan struct{}

	mu       sync.Mutex
	running  int
	most     int
	started  int
	startedC chan struct{} // a value per start
}

func (g *gate) Start(_ context.Context, t runner.Task) (string, error) {
	g.mu.Lock()
	g.running++
	g.started++
	g.most = max(g.most, g.running)
	g.mu.Unlock()
	g.startedC <- struct{}{}
	return t.Name, nil
}

func (g *gate) Wait(ctx context.Context, _ runner.Task, _ string, _ runner.Sink) (runner.Result, error) {
	select {
	case <-g.open:
	case <-ctx.Done():
		return runner.Result{}, ctx.Err()
	}
	g.mu.Lock()
	g.running--
	g.mu.Unlock()
	return runner.Result{State: job.Finished, Reason: "gate opened"}, nil
}

func (g *gate) Stop(context.Context, string) error { return nil }

// TestAgentFillsItsFreeSlotsAndNoMore checks that an agent claiming for
// several free slots at once takes as many jobs as it has slots, runs no
// more at once than max_jobs, and takes the rest as slots free up.
func TestAgentFillsItsFreeSlotsAndNoMore(t *testing.T) {
	t.Parallel()
	const maxJobs, jobs = 3, 7
	// The largest claim the agent asks for: all its free slots at once.
	var most atomic.Int64
	e := setupBehind(t, server.Config{}, claimsThrough(t, func(c *api.Claim) {
		for m := most.Load(); int64(c.Max) > m && !most.CompareAndSwap(m, int64(c.Max)); m = most.Load() {
		}
	}))
	e.queue("q", job.LocalProcess)
	var ids []string
	for range jobs {
		ids = append(ids, e.launch("q", sh("true"), job.Medium).ID)
	}
	g := &gate{open: make(chan struct{}), startedC: make(chan struct{}, jobs)}
	e.startAgent([]string{"q"}, maxJobs, g)
	for range maxJobs {
		<-g.startedC
	}
	held := 0
	for _, id := range ids {
		j := e.waitFor(id, "read", func(job.Job) bool { return true })
		if j.State.Held() {
			held++
		}
	}
	if held != maxJobs {
		t.Fatalf("with the runs blocked: got %d jobs held, want max_jobs %d", held, maxJobs)
	}
	if got := most.Load(); got != maxJobs {
		t.Fatalf("largest claim: got max %d, want %d: every free slot in one request", got, maxJobs)
	}
	close(g.open)
	for _, id := range ids {
		if j := e.waitEnd(id); j.State != job.Finished {
			t.Fatalf("job %s: got %s (%s), want finished", id, j.State, j.Reason)
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.most > maxJobs || g.started != jobs {
		t.Fatalf("got %d runs, at most %d at once; want %d runs, at most %d at once", g.started, g.most, jobs, maxJobs)
	}
}

// TestAgentHandsBackJobsBeyondItsSlots checks that an agent that gets more
// jobs than it asked for runs no more than max_jobs at once: it hands the
// rest back at once, and runs them later, as slots free up.
func TestAgentHandsBackJobsBeyondItsSlots(t *testing.T) {
	t.Parallel()
	const maxJobs, jobs = 2, 5
	// A front that asks the server for more jobs than the agent did.
	e := setupBehind(t, server.Config{}, claimsThrough(t, func(c *api.Claim) { c.Max = jobs }))
	e.queue("q", job.LocalProcess)
	var ids []string
	for range jobs {
		ids = append(ids, e.launch("q", sh("true"), job.Medium).ID)
	}
	g := &gate{open: make(chan struct{}), startedC: make(chan struct{}, jobs)}
	stop := e.startAgent([]string{"q"}, maxJobs, g)
	for range maxJobs {
		<-g.startedC
	}
	// The extra jobs went back before the agent started any.
	held := 0
	for _, id := range ids {
		if j := e.waitFor(id, "read", func(job.Job) bool { return true }); j.State.Held() {
			held++
		}
	}
	if held != maxJobs {
		t.Fatalf("with the runs blocked: got %d jobs held, want max_jobs %d", held, maxJobs)
	}
	close(g.open)
	for _, id := range ids {
		if j := e.waitEnd(id); j.State != job.Finished {
			t.Fatalf("job %s: got %s (%s), want finished", id, j.State, j.Reason)
		}
	}
	stop() // returns: no slot is waited for twice
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.most > maxJobs || g.started != jobs {
		t.Fatalf("got %d runs, at most %d at once; want %d runs, at most %d at once", g.started, g.most, jobs, maxJobs)
	}
}

// claimsThrough is a front for setupBehind that shows each POST /v1/claims
// body to see, which may change it, before the server reads it.
func claimsThrough(t *testing.T, see func(c *api.Claim)) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && r.URL.Path == "/v1/claims" {
				var c api.Claim
				if err := json.NewDecoder(r.Body).Decode(&c); err != nil {
					t.Errorf("a claim's body: %v", err)
				}
				see(&c)
				body, _ := json.Marshal(c)
				r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
			}
			h.ServeHTTP(w, r)
		})
	}
}

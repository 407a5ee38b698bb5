package agent_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/server"
)

// requests counts an agent's claims and batches of moves.
type requests struct {
	claims      atomic.Int64 // POST /v1/claims
	batches     atomic.Int64 // POST /v1/transitions
	withClaim   atomic.Int64 // ... that carried a claim
	claimedMost atomic.Int64 // the largest such claim's max
}

func (n *requests) front(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/v1/claims":
			n.claims.Add(1)
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

package client

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"runtime"
	"sync"
	"testing"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/job"
)

// counter is a front of the server that counts the moves of each POST
// /v1/transitions.
type counter struct {
	next  http.Handler
	mu    sync.Mutex
	sizes []int
}

func (c *counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v1/transitions" {
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		var req api.Transitions
		_ = json.Unmarshal(b, &req)
		c.mu.Lock()
		c.sizes = append(c.sizes, len(req.Transitions))
		c.mu.Unlock()
	}
	c.next.ServeHTTP(w, r)
}

// TestMovesOfAnsweredCallersShareTheNextRequest checks that the moves
// that callers make as soon as their earlier ones are answered (an
// agent's jobs going on to their next step) go out together, rather than
// the first of them alone in a request of its own, then the next alone in
// a second, while the rest wait for either: a sender lets the callers its
// answer woke, and the one that started it, queue their moves before it
// takes the next batch. On one P the order is fixed: without those
// yields, 16 such moves took 3 requests.
//
// Not parallel: it sets GOMAXPROCS for the process while it runs.
func TestMovesOfAnsweredCallersShareTheNextRequest(t *testing.T) {
	ctx := t.Context()
	var cnt *counter
	const n = 16
	c, cs := claimedSetup(t, func(srv http.Handler) http.Handler {
		cnt = &counter{next: srv}
		return cnt
	}, n, 0)

	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	// The first moves, queued together by one caller, go in one request.
	firsts := make([]*Pending, n)
	for i, cl := range cs {
		firsts[i] = c.Send(ctx, cl.Job.ID, api.Transition{Token: cl.Job.Lease.Token, To: job.Submitting, Reason: "submitting"}, nil, nil)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, cl := range cs {
		wg.Go(func() {
			if _, err := firsts[i].Wait(); err != nil {
				errs[i] = err
				return
			}
			_, errs[i] = c.Send(ctx, cl.Job.ID, api.Transition{Token: cl.Job.Lease.Token, To: job.Starting, Reason: "started"}, nil, nil).Wait()
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("moving job %d: %v", i, err)
		}
	}
	cnt.mu.Lock()
	sizes := append([]int(nil), cnt.sizes...)
	cnt.mu.Unlock()
	t.Logf("moves per request: %v", sizes)
	if len(sizes) > 3 || len(sizes) == 0 || sizes[0] != n {
		t.Errorf("moves per request: got %v, want [%d] then the %d next moves in one or two requests", sizes, n, n)
	}
}

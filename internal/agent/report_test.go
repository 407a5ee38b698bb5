package agent_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/server"
)

// TestJobsShareReportRequests checks that an agent's jobs report their
// moves through POST /v1/transitions, and that the moves its jobs make
// while its requests are in flight go together in the next: requests with
// a job's end are held until every run has ended, and the jobs' ends must
// then share requests. Every job still goes through each state in order.
func TestJobsShareReportRequests(t *testing.T) {
	t.Parallel()
	const jobs = 8
	var (
		mu       sync.Mutex
		requests [][]job.State // the moves of each POST /v1/transitions, in order
		single   int           // POST /v1/jobs/{id}/transition requests
	)
	hold := make(chan struct{})
	front := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && r.URL.Path == "/v1/transitions" {
				body, _ := io.ReadAll(r.Body)
				r.Body = io.NopCloser(bytes.NewReader(body))
				var req api.Transitions
				if err := json.Unmarshal(body, &req); err != nil {
					t.Errorf("a batch's body: %v", err)
				}
				var moves []job.State
				for _, m := range req.Transitions {
					moves = append(moves, m.To)
				}
				mu.Lock()
				requests = append(requests, moves)
				mu.Unlock()
				if slices.Contains(moves, job.Finished) {
					<-hold
				}
			} else if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/transition") {
				mu.Lock()
				single++
				mu.Unlock()
			}
			h.ServeHTTP(w, r)
		})
	}
	e := setupBehind(t, server.Config{}, front)
	e.queue("q", job.LocalProcess)
	var ids []string
	for range jobs {
		ids = append(ids, e.launch("q", job.Spec{Entrypoint: []string{"true"}}, job.Medium).ID)
	}
	g := &gate{open: make(chan struct{}), startedC: make(chan struct{}, jobs)}
	e.startAgent([]string{"q"}, jobs, g)
	for range jobs {
		<-g.startedC
	}
	for _, id := range ids {
		e.waitFor(id, "started", func(j job.Job) bool { return j.State == job.Starting })
	}
	close(g.open)
	// Every run has ended once none is running; the pause lets their
	// jobs queue their reports behind the held ones.
	for {
		g.mu.Lock()
		running := g.running
		g.mu.Unlock()
		if running == 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	close(hold)

	for _, id := range ids {
		j := e.waitEnd(id)
		var path []job.State
		for _, ev := range j.Events {
			path = append(path, ev.To)
		}
		want := []job.State{job.Queued, job.Claimed, job.Submitting, job.Starting, job.Finished}
		if !slices.Equal(path, want) {
			t.Errorf("job %s went through %v, want %v", id, path, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	moves, ends := 0, 0
	for _, ms := range requests {
		moves += len(ms)
		if slices.Contains(ms, job.Finished) {
			ends++
		}
	}
	if moves != 3*jobs || single != 0 {
		t.Errorf("moves reported: got %d in batches and %d alone, want %d, all in batches", moves, single, 3*jobs)
	}
	if ends >= jobs {
		t.Errorf("the %d jobs' ends came in %d requests (%v); want them to share", jobs, ends, requests)
	}
}

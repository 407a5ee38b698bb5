package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/bench"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/runner"
	"github.com/slipway-ml/slipway/internal/server"
)

// startMoves is a front that shows each POST /v1/transitions that carries
// a move to starting to act, which may rewrite the request or break it
// (close the connection, no answer), and notes every request's moves.
type startMoves struct {
	act func(req *api.Transitions) (fail bool)

	mu    sync.Mutex
	moves [][]job.State
}

func (s *startMoves) front(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/transitions" {
			h.ServeHTTP(w, r)
			return
		}
		var req api.Transitions
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var tos []job.State
		for _, t := range req.Transitions {
			tos = append(tos, t.To)
		}
		s.mu.Lock()
		s.moves = append(s.moves, tos)
		s.mu.Unlock()
		if slices.Contains(tos, job.Starting) && s.act(&req) {
			if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
				_ = conn.Close()
			}
			return
		}
		body, _ := json.Marshal(req)
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		h.ServeHTTP(w, r)
	})
}

// waiter is a runner whose runs last until Wait's context ends.
type waiter struct{ ended chan struct{} }

func (w *waiter) Start(_ context.Context, t runner.Task) (string, error) { return t.Name, nil }

func (w *waiter) Wait(ctx context.Context, _ runner.Task, _ string, _ runner.Sink) (runner.Result, error) {
	<-ctx.Done()
	close(w.ended)
	return runner.Result{}, ctx.Err()
}

func (w *waiter) Stop(context.Context, string) error { return nil }

// TestRefusedStartEndsTheRunsWait checks that when the server refuses a
// job's move to starting, which the agent sends without waiting for its
// answer, the run's Wait, begun meanwhile, ends, no later move of the job
// is sent, and the job is left as the refusal found it, not handed over.
func TestRefusedStartEndsTheRunsWait(t *testing.T) {
	t.Parallel()
	s := &startMoves{act: func(req *api.Transitions) bool {
		for i := range req.Transitions {
			if req.Transitions[i].To == job.Starting {
				req.Transitions[i].To = "bogus" // refused as invalid
			}
		}
		return false
	}}
	e := setupBehind(t, server.Config{}, s.front)
	e.queue("q", job.LocalProcess)
	j := e.launch("q", sh("true"), job.Medium)
	w := &waiter{ended: make(chan struct{})}
	stop := e.startAgent([]string{"q"}, 1, w)
	select {
	case <-w.ended:
	case <-time.After(30 * time.Second):
		t.Fatal("the run's Wait did not end after its start was refused")
	}
	stop()
	got, err := e.c.Job(e.ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != job.Submitting {
		t.Errorf("the job after its start was refused: got %s (%s), want submitting, left as it was", got.State, got.Reason)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if want := [][]job.State{{job.Submitting}, {job.Starting}}; !slices.EqualFunc(s.moves, want, slices.Equal) {
		t.Errorf("moves sent: got %v, want %v", s.moves, want)
	}
}

// TestUnansweredStartIsNotOvertaken checks that when the request with a
// job's move to starting goes unanswered (the server unreachable), the
// job's end, reported meanwhile by a run that ended at once, never lands
// before the start is sent again and lands: the job goes through every
// state in order, its run's id recorded.
func TestUnansweredStartIsNotOvertaken(t *testing.T) {
	t.Parallel()
	var once sync.Once
	s := &startMoves{act: func(*api.Transitions) (fail bool) {
		once.Do(func() { fail = true })
		return fail
	}}
	e := setupBehind(t, server.Config{}, s.front)
	e.queue("q", job.LocalProcess)
	j := e.launch("q", sh("true"), job.Medium)
	e.startAgent([]string{"q"}, 1, &bench.Noop{})
	got := e.waitEnd(j.ID)
	var path []job.State
	for _, ev := range got.Events {
		path = append(path, ev.To)
	}
	if want := []job.State{job.Queued, job.Claimed, job.Submitting, job.Starting, job.Finished}; !slices.Equal(path, want) || got.ExternalID == "" {
		t.Fatalf("job %s went through %v, external id %q; want %v with an external id", j.ID, path, got.ExternalID, want)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.moves) < 3 {
		t.Fatalf("requests of moves: got %v, want the start's unanswered one and more", s.moves)
	}
}

// TestStoppingAgentHandsOverAfterTheStartLands checks that an agent that
// stops while a job's move to starting is on its way hands the job over
// only once that move has landed: the job goes back to its queue with its
// run's id, for the next agent to re-attach to, and no hand-over reaches
// the server while the start is still held there.
func TestStoppingAgentHandsOverAfterTheStartLands(t *testing.T) {
	t.Parallel()
	held := make(chan struct{})
	var (
		mu        sync.Mutex
		holding   bool
		overtaken bool
	)
	s := &startMoves{act: func(*api.Transitions) bool {
		mu.Lock()
		holding = true
		mu.Unlock()
		<-held
		mu.Lock()
		holding = false
		mu.Unlock()
		return false
	}}
	front := func(h http.Handler) http.Handler {
		next := s.front(h)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/release") {
				mu.Lock()
				overtaken = overtaken || holding
				mu.Unlock()
			}
			next.ServeHTTP(w, r)
		})
	}
	e := setupBehind(t, server.Config{}, front)
	e.queue("q", job.LocalProcess)
	j := e.launch("q", sh("true"), job.Medium)
	w := &waiter{ended: make(chan struct{})}
	stop := e.startAgent([]string{"q"}, 1, w)
	for {
		mu.Lock()
		h := holding
		mu.Unlock()
		if h {
			break
		}
		time.Sleep(time.Millisecond)
	}
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	<-w.ended
	runtime.Gosched()
	close(held)
	<-stopped
	got, err := e.c.Job(e.ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if overtaken {
		t.Error("the hand-over reached the server while the start was still held there")
	}
	if got.State != job.Queued || got.ExternalID == "" {
		t.Errorf("the job after its agent stopped: got %s, external id %q; want queued with its run's id", got.State, got.ExternalID)
	}
}

// reporter is a runner whose runs report the states a SageMaker run goes
// through, from starting, then end.
type reporter struct{}

func (reporter) Start(_ context.Context, t runner.Task) (string, error) { return t.Name, nil }

func (reporter) Wait(_ context.Context, _ runner.Task, _ string, sk runner.Sink) (runner.Result, error) {
	sk.State(job.Starting, "launching the training instances")
	sk.State(job.Running, "training")
	return runner.Result{State: job.Finished, Reason: "done"}, nil
}

func (reporter) Stop(context.Context, string) error { return nil }

// TestRunReportsStartWhileItsMoveIsOnItsWay checks that a run that reports
// starting while the agent's own move to starting is still on its way
// (held a moment by the front) sends no second move to starting, which the
// server would refuse as starting → starting, and that the job goes
// through every state once.
func TestRunReportsStartWhileItsMoveIsOnItsWay(t *testing.T) {
	t.Parallel()
	s := &startMoves{act: func(*api.Transitions) bool {
		time.Sleep(200 * time.Millisecond) // widens the window: the run reports meanwhile
		return false
	}}
	e := setupBehind(t, server.Config{}, s.front)
	e.queue("q", job.LocalProcess)
	j := e.launch("q", sh("true"), job.Medium)
	e.startAgent([]string{"q"}, 1, reporter{})
	got := e.waitEnd(j.ID)
	var path []job.State
	for _, ev := range got.Events {
		path = append(path, ev.To)
	}
	if want := []job.State{job.Queued, job.Claimed, job.Submitting, job.Starting, job.Running, job.Finished}; !slices.Equal(path, want) {
		t.Errorf("job %s went through %v, want %v", j.ID, path, want)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	starts := 0
	for _, tos := range s.moves {
		for _, to := range tos {
			if to == job.Starting {
				starts++
			}
		}
	}
	if starts != 1 {
		t.Errorf("moves to starting sent: got %d (%v), want 1", starts, s.moves)
	}
}

package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/job"
)

// moveLog is a front of the server that notes the moves of each POST
// /v1/transitions ("job:state"), and lets a test hold a request (until
// the channel given is closed) or break it (the connection closed, no
// answer) by what it carries.
type moveLog struct {
	mu       sync.Mutex
	requests [][]string
	arrived  chan int                                             // the number of each request, as it arrives
	decide   func(moves []string) (hold chan struct{}, fail bool) // nil: pass all
}

func (m *moveLog) front(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/transitions" {
			h.ServeHTTP(w, r)
			return
		}
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		var req api.Transitions
		_ = json.Unmarshal(b, &req)
		var moves []string
		for _, t := range req.Transitions {
			moves = append(moves, t.Job+":"+string(t.To))
		}
		m.mu.Lock()
		m.requests = append(m.requests, moves)
		n := len(m.requests)
		decide := m.decide
		m.mu.Unlock()
		if m.arrived != nil {
			m.arrived <- n
		}
		if decide != nil {
			hold, fail := decide(moves)
			if hold != nil {
				<-hold
			}
			if fail {
				conn, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					_ = conn.Close()
				}
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

func (m *moveLog) seen() [][]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.requests)
}

func move(c api.Claimed, to job.State) api.Transition {
	return api.Transition{Token: c.Job.Lease.Token, To: to, Reason: string(to), ExternalID: "run-" + c.Job.ID}
}

// TestSendAfterGoesInTheSameRequestOrALaterOne checks Send's after: a
// move waiting with the earlier move of its job goes in the same request,
// after it; one whose earlier move is on its way in another request waits
// for that one's answer, even with a request free to carry it, and goes
// in the next.
func TestSendAfterGoesInTheSameRequestOrALaterOne(t *testing.T) {
	t.Parallel()
	m := &moveLog{arrived: make(chan int, 16)}
	open := make(chan struct{})
	m.decide = func(moves []string) (chan struct{}, bool) {
		if len(moves) == 1 && moves[0][len(moves[0])-len("submitting"):] == "submitting" {
			return open, false // the first requests, each a job's submitting
		}
		return nil, false
	}
	c, cs := claimedSetup(t, m.front, 4, 1)
	ctx := t.Context()
	wait := func(p *Pending, what string, want job.State) {
		t.Helper()
		if st, err := p.Wait(); err != nil || st != want {
			t.Fatalf("%s: got %s, %v; want %s", what, st, err, want)
		}
	}
	// Both requests on their way, held: the next moves wait.
	sub0 := c.Send(ctx, cs[0].Job.ID, move(cs[0], job.Submitting), nil, nil)
	<-m.arrived
	sub1 := c.Send(ctx, cs[1].Job.ID, move(cs[1], job.Submitting), nil, nil)
	<-m.arrived
	// Job 2: its start and end, both waiting, go in one request, in order.
	sub2 := c.Send(ctx, cs[2].Job.ID, move(cs[2], job.Submitting), nil, nil)
	start2 := c.Send(ctx, cs[2].Job.ID, move(cs[2], job.Starting), sub2, nil)
	end2 := c.Send(ctx, cs[2].Job.ID, move(cs[2], job.Finished), start2, nil)
	close(open)
	wait(sub0, "job 0's submitting", job.Submitting)
	wait(sub1, "job 1's submitting", job.Submitting)
	wait(sub2, "job 2's submitting", job.Submitting)
	wait(start2, "job 2's starting", job.Starting)
	wait(end2, "job 2's end", job.Finished)
	<-m.arrived // the third request
	id2 := cs[2].Job.ID
	if got, want := m.seen()[2], []string{id2 + ":submitting", id2 + ":starting", id2 + ":finished"}; !slices.Equal(got, want) {
		t.Fatalf("the third request: got %v, want %v", got, want)
	}

	// Job 3: its start on its way, held; its end waits for the answer
	// though the second request is free, which another move takes.
	hold := make(chan struct{})
	id3 := cs[3].Job.ID
	m.mu.Lock()
	m.decide = func(moves []string) (chan struct{}, bool) {
		if slices.Contains(moves, id3+":starting") {
			return hold, false
		}
		return nil, false
	}
	m.mu.Unlock()
	wait(c.Send(ctx, id3, move(cs[3], job.Submitting), nil, nil), "job 3's submitting", job.Submitting)
	<-m.arrived
	start3 := c.Send(ctx, id3, move(cs[3], job.Starting), nil, nil)
	<-m.arrived
	end3 := c.Send(ctx, id3, move(cs[3], job.Finished), start3, nil)
	wait(c.Send(ctx, cs[1].Job.ID, move(cs[1], job.Failed), nil, nil), "job 1's end, beside", job.Failed)
	<-m.arrived
	close(hold)
	wait(start3, "job 3's starting", job.Starting)
	wait(end3, "job 3's end", job.Finished)
	<-m.arrived
	seen := m.seen()
	if got := seen[len(seen)-2:]; !slices.Equal(got[0], []string{cs[1].Job.ID + ":failed"}) || !slices.Equal(got[1], []string{id3 + ":finished"}) {
		t.Fatalf("the last two requests: got %v, want job 1's end alone, then job 3's", got)
	}
}

// TestSendAfterAFailedMoveIsNotSent checks that a move whose earlier move
// failed is never sent: neither when that one's request went unanswered
// (the server unreachable), nor when its caller took it back; it is
// answered with ErrEarlierMoveFailed, wrapping why.
func TestSendAfterAFailedMoveIsNotSent(t *testing.T) {
	t.Parallel()
	m := &moveLog{arrived: make(chan int, 16)}
	hold := make(chan struct{})
	m.decide = func(moves []string) (chan struct{}, bool) {
		if len(moves) > 0 && moves[0][len(moves[0])-len("starting"):] == "starting" {
			return hold, true // held, then broken
		}
		return nil, false
	}
	c, cs := claimedSetup(t, m.front, 2, 1)
	ctx := t.Context()
	id0 := cs[0].Job.ID
	start := c.Send(ctx, id0, move(cs[0], job.Starting), nil, nil)
	<-m.arrived
	end := c.Send(ctx, id0, move(cs[0], job.Finished), start, nil)
	close(hold)
	if _, err := start.Wait(); !IsUnreachable(err) {
		t.Fatalf("the start, unanswered: got %v, want the server unreachable", err)
	}
	if _, err := end.Wait(); !errors.Is(err, ErrEarlierMoveFailed) || !IsUnreachable(err) {
		t.Fatalf("the end after it: got %v, want %v wrapping the start's error", err, ErrEarlierMoveFailed)
	}

	// Taken back: the caller of the earlier move gave up before it was sent.
	id1 := cs[1].Job.ID
	blocker := make(chan struct{})
	m.mu.Lock()
	m.decide = func(moves []string) (chan struct{}, bool) {
		if slices.Contains(moves, id0+":failed") {
			return blocker, false
		}
		return nil, false
	}
	m.mu.Unlock()
	// Two requests on their way keep job 1's moves waiting.
	b1 := c.Send(ctx, id0, move(cs[0], job.Failed), nil, nil)
	<-m.arrived
	b2 := c.Send(ctx, id0, move(cs[0], job.Failed), nil, nil)
	<-m.arrived
	quit, giveUp := context.WithCancel(ctx)
	sub := c.Send(quit, id1, move(cs[1], job.Submitting), nil, nil)
	after := c.Send(ctx, id1, move(cs[1], job.Failed), sub, nil)
	giveUp()
	if _, err := sub.Wait(); !errors.Is(err, context.Canceled) {
		t.Fatalf("the move taken back: got %v, want %v", err, context.Canceled)
	}
	close(blocker)
	_, _ = b1.Wait()
	_, _ = b2.Wait()
	if _, err := after.Wait(); !errors.Is(err, ErrEarlierMoveFailed) || !errors.Is(err, context.Canceled) {
		t.Fatalf("the move after one taken back: got %v, want %v wrapping %v", err, ErrEarlierMoveFailed, context.Canceled)
	}
	for _, r := range m.seen() {
		for _, mv := range r {
			if mv == id0+":finished" || mv == id1+":failed" || mv == id1+":submitting" {
				t.Errorf("move %s was sent; want it never sent", mv)
			}
		}
	}
}

package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
)

// testTransitionsSameJob checks a batch that moves one job several times,
// where some of its moves are refused: a refused move leaves the job as
// the earlier moves left it, for the later ones to see, and records no
// event; a move after the batch released the lease is refused.
func testTransitionsSameJob(t *testing.T, s *suite) {
	c := ctx(t)
	s.queue(t, "q")
	for range 2 {
		s.enqueue(t, "q", job.Medium)
	}
	js, err := s.ClaimN(c, store.ClaimRequest{Agent: "agent-a", Queues: []string{"q"}, TTL: ttl}, 2)
	if err != nil || len(js) != 2 {
		t.Fatalf("claiming 2 jobs: got %d, %v", len(js), err)
	}
	a, b := js[0], js[1]
	ta, tb := a.Lease.Token, b.Lease.Token
	us := []store.Update{
		{JobID: a.ID, Token: ta + 1, To: job.Running, Reason: "stale"},                          // refused: a stays claimed
		{JobID: a.ID, Token: ta, To: job.Submitting, Reason: "submitting", ExternalID: "run-a"}, // from claimed
		{JobID: a.ID, Token: ta, To: job.Claimed, Reason: "backwards"},                          // refused: a stays submitting
		{JobID: a.ID, Token: ta, To: job.Running, Reason: "running", Outputs: map[string]string{"k": "1"}},
		{JobID: b.ID, Token: tb, To: job.Failed, Reason: "failed", Outputs: map[string]string{"err": "x"}},
		{JobID: b.ID, Token: tb, To: job.Finished, Reason: "too late"}, // refused: the lease is gone
		{JobID: a.ID, Token: ta, To: job.Finished, Reason: "done", Outputs: map[string]string{"m": "2"}},
	}
	ms, err := s.Transitions(c, us)
	if err != nil || len(ms) != len(us) {
		t.Fatalf("Transitions: got %d results, %v; want %d", len(ms), err, len(us))
	}
	wantErrs := []error{job.ErrLeaseLost, nil, job.ErrConflict, nil, nil, job.ErrLeaseLost, nil}
	for i, want := range wantErrs {
		if got := ms[i].Err; (want == nil) != (got == nil) || !errors.Is(got, want) {
			t.Fatalf("update %d (%s → %s, %q): got error %v, want %v", i, us[i].JobID, us[i].To, us[i].Reason, got, want)
		}
	}
	if got := ms[1].Job; got.State != job.Submitting || got.ExternalID != "run-a" || got.Lease == nil {
		t.Fatalf("a after submitting: got %s, external id %q, lease %+v; want submitting, run-a, held", got.State, got.ExternalID, got.Lease)
	}
	if got := ms[3].Job; got.State != job.Running || got.ExternalID != "run-a" || got.Outputs["k"] != "1" {
		t.Fatalf("a after running: got %s, external id %q, outputs %v; want running, run-a, k=1", got.State, got.ExternalID, got.Outputs)
	}
	if got := ms[6].Job; got.State != job.Finished || got.Lease != nil || got.Outputs["k"] != "1" || got.Outputs["m"] != "2" {
		t.Fatalf("a after finishing: got %s, lease %+v, outputs %v; want finished, released, k=1 and m=2", got.State, got.Lease, got.Outputs)
	}

	// What a read finds is the last move of each job, with an event for
	// each move that was not refused, in order.
	for _, w := range []struct {
		j    job.Job
		last store.Moved
		path []job.State
	}{
		{a, ms[6], []job.State{job.Queued, job.Claimed, job.Submitting, job.Running, job.Finished}},
		{b, ms[4], []job.State{job.Queued, job.Claimed, job.Failed}},
	} {
		got := s.get(t, w.j.ID)
		var path []job.State
		for _, e := range got.Events {
			path = append(path, e.To)
		}
		if !slices.Equal(path, w.path) {
			t.Fatalf("events of job %s: got %v, want %v", w.j.ID, path, w.path)
		}
		got.Events = nil
		sameJob(t, "GetJob after a batch of moves of one job", got, w.last.Job)
	}
	ev := s.get(t, a.ID).Events
	if e := ev[2]; e.From != job.Claimed || e.Reason != "submitting" || e.Actor != "agent-a" {
		t.Fatalf("event of a's submit: got %+v, want claimed → submitting by agent-a, submitting", e)
	}
	if e := ev[3]; e.From != job.Submitting || e.Reason != "running" {
		t.Fatalf("event of a's run: got %+v, want submitting → running, running", e)
	}
}

// testTransitionsMixed checks a batch of jobs of several queues, held by
// several agents with several API tokens: each update is checked against
// its own job's holder and queue, a move that keeps the lease leaves it
// as the claim made it, and one that ends the job releases it.
func testTransitionsMixed(t *testing.T, s *suite) {
	c := ctx(t)
	s.queue(t, "q1")
	s.queue(t, "q2")
	for _, q := range []string{"q1", "q1", "q2", "q2"} {
		s.enqueue(t, q, job.Medium)
	}
	claim := func(agent, token, q string) []job.Job {
		js, err := s.ClaimN(c, store.ClaimRequest{Agent: agent, Queues: []string{q}, TTL: ttl, TokenID: token}, 2)
		if err != nil || len(js) != 2 {
			t.Fatalf("%s claiming 2 from %s: got %d, %v", agent, q, len(js), err)
		}
		return js
	}
	one, two := claim("agent-1", "tok-1", "q1"), claim("agent-2", "tok-2", "q2")
	h1 := store.Holder{Agent: "agent-1", TokenID: "tok-1", Queues: []string{"q1"}}
	h2 := store.Holder{Agent: "agent-2", TokenID: "tok-2"}
	us := []store.Update{
		{JobID: one[0].ID, Token: one[0].Lease.Token, To: job.Running, Reason: "r1", Holder: h1},
		{JobID: two[0].ID, Token: two[0].Lease.Token, To: job.Finished, Reason: "f2", Holder: h2},
		{JobID: two[1].ID, Token: two[1].Lease.Token, To: job.Running, Reason: "scoped", Holder: h1}, // q2 is not h1's
		{JobID: one[1].ID, Token: one[1].Lease.Token, To: job.Running, Reason: "not mine", Holder: h2},
		{JobID: two[1].ID, Token: two[1].Lease.Token, To: job.Running, Reason: "r2", Holder: h2},
		{JobID: one[1].ID, Token: one[1].Lease.Token, To: job.Queued, Reason: "handed over", Holder: h1},
	}
	ms, err := s.Transitions(c, us)
	if err != nil || len(ms) != len(us) {
		t.Fatalf("Transitions: got %d results, %v; want %d", len(ms), err, len(us))
	}
	wantErrs := []error{nil, nil, job.ErrForbidden, job.ErrLeaseLost, nil, nil}
	for i, want := range wantErrs {
		if got := ms[i].Err; (want == nil) != (got == nil) || !errors.Is(got, want) {
			t.Fatalf("update %d (%s → %s, %q): got error %v, want %v", i, us[i].JobID, us[i].To, us[i].Reason, got, want)
		}
	}
	for _, w := range []struct {
		claimed job.Job
		moved   store.Moved
		state   job.State
		held    bool
	}{
		{one[0], ms[0], job.Running, true},
		{two[0], ms[1], job.Finished, false},
		{two[1], ms[4], job.Running, true},
		{one[1], ms[5], job.Queued, false},
	} {
		got := s.get(t, w.claimed.ID)
		if got.State != w.state || (got.Lease != nil) != w.held {
			t.Fatalf("job %s after the batch: got %s, lease %+v; want %s, held %v", got.ID, got.State, got.Lease, w.state, w.held)
		}
		if w.held {
			l, want := normalize(got).Lease, normalize(w.claimed).Lease
			if *l != *want {
				t.Fatalf("lease of job %s after a move that keeps it: got %+v, want %+v as claimed", got.ID, *l, *want)
			}
		}
		got.Events = nil
		sameJob(t, "GetJob after a mixed batch", got, w.moved.Job)
	}
	// The job handed back is claimed again, with a greater token.
	again, err := s.ClaimN(c, store.ClaimRequest{Agent: "agent-3", Queues: []string{"q1"}, TTL: ttl}, 1)
	if err != nil || len(again) != 1 || again[0].ID != one[1].ID || again[0].Lease.Token <= one[1].Lease.Token {
		t.Fatalf("claiming the job handed over: got %v, %v; want %s with a token above %d", again, err, one[1].ID, one[1].Lease.Token)
	}
}

// testClaimNPasses checks that a claim of many jobs across several queues
// takes them in the order of one-job passes over the queues, whatever the
// store takes at once: by priority then age within a queue, a queue out
// once empty or at its cap, the last pass partial; and that a queue named
// twice takes two turns a pass.
func testClaimNPasses(t *testing.T, s *suite) {
	c := ctx(t)
	for _, q := range []string{"a", "b", "c", "e", "f", "g", "h"} {
		s.queue(t, q)
	}
	if _, err := s.CreateQueue(c, job.Queue{Name: "d", Resource: job.LocalProcess, MaxRunning: 2}); err != nil {
		t.Fatalf("creating a capped queue: %v", err)
	}
	// a's jobs, oldest first, are claimed critical, high, medium, low, low.
	a1, a2, a3, a4, a5 := s.enqueue(t, "a", job.Low), s.enqueue(t, "a", job.High), s.enqueue(t, "a", job.Medium),
		s.enqueue(t, "a", job.Critical), s.enqueue(t, "a", job.Low)
	b1 := s.enqueue(t, "b", job.Medium)
	c1, c2, c3 := s.enqueue(t, "c", job.Medium), s.enqueue(t, "c", job.High), s.enqueue(t, "c", job.Medium)
	d0 := s.enqueue(t, "d", job.Medium)
	s.claim(t, "agent-0", "d") // d has room for one more
	d1 := s.enqueue(t, "d", job.Low)
	s.enqueue(t, "d", job.Low)
	if d0.ID == d1.ID {
		t.Fatal("enqueued the same job twice")
	}

	got, err := s.ClaimN(c, store.ClaimRequest{Agent: "agent-1", Queues: []string{"a", "b", "c", "d"}, TTL: ttl}, 8)
	if err != nil {
		t.Fatalf("claiming 8 from [a b c d]: %v", err)
	}
	// Pass 1: a, b, c, d (at its cap after this); pass 2: a, c (b is
	// empty); pass 3: a, c.
	want := []string{a4.ID, b1.ID, c2.ID, d1.ID, a2.ID, c1.ID, a3.ID, c3.ID}
	if !slices.Equal(ids(got), want) {
		t.Fatalf("claiming 8 from [a b c d]:\ngot  %v\nwant %v", ids(got), want)
	}
	for _, j := range got {
		if n := len(s.get(t, j.ID).Events); n != 2 {
			t.Fatalf("job %s claimed: got %d events, want queued and claimed", j.ID, n)
		}
	}
	got, err = s.ClaimN(c, store.ClaimRequest{Agent: "agent-1", Queues: []string{"a", "b", "c", "d"}, TTL: ttl}, 8)
	if want := []string{a1.ID, a5.ID}; err != nil || !slices.Equal(ids(got), want) {
		t.Fatalf("claiming 8 from what is left: got %v, %v; want %v", ids(got), err, want)
	}

	// Five from three queues of two: two full passes but for the last
	// queue's second turn.
	var fgh [][]string
	for _, q := range []string{"f", "g", "h"} {
		fgh = append(fgh, []string{s.enqueue(t, q, job.Medium).ID, s.enqueue(t, q, job.Medium).ID})
	}
	got, err = s.ClaimN(c, store.ClaimRequest{Agent: "agent-2", Queues: []string{"f", "g", "h"}, TTL: ttl}, 5)
	if want := []string{fgh[0][0], fgh[1][0], fgh[2][0], fgh[0][1], fgh[1][1]}; err != nil || !slices.Equal(ids(got), want) {
		t.Fatalf("claiming 5 from [f g h]: got %v, %v; want %v", ids(got), err, want)
	}

	var es []string
	for range 4 {
		es = append(es, s.enqueue(t, "e", job.Medium).ID)
	}
	got, err = s.ClaimN(c, store.ClaimRequest{Agent: "agent-2", Queues: []string{"e", "e"}, TTL: ttl}, 4)
	if err != nil || !slices.Equal(ids(got), es) {
		t.Fatalf("claiming 4 from [e e]: got %v, %v; want %v", ids(got), err, es)
	}
}

// testTransitionsMany checks a batch of more updates than one statement
// of a store may carry: every one lands, with its event, as its own.
func testTransitionsMany(t *testing.T, s *suite) {
	c := ctx(t)
	s.queue(t, "q")
	const jobs = 45
	for range jobs {
		s.enqueue(t, "q", job.Medium)
	}
	js, err := s.ClaimN(c, store.ClaimRequest{Agent: "agent-a", Queues: []string{"q"}, TTL: ttl}, jobs)
	if err != nil || len(js) != jobs {
		t.Fatalf("claiming %d jobs: got %d, %v", jobs, len(js), err)
	}
	var us []store.Update
	for i, j := range js {
		us = append(us, store.Update{JobID: j.ID, Token: j.Lease.Token, To: job.Submitting, Reason: fmt.Sprint("submit ", i)})
	}
	for i, j := range js {
		to := job.Running
		if i%2 == 1 {
			to = job.Finished
		}
		us = append(us, store.Update{JobID: j.ID, Token: j.Lease.Token, To: to, Reason: fmt.Sprint("end ", i), ExternalID: fmt.Sprint("run-", i)})
	}
	ms, err := s.Transitions(c, us)
	if err != nil || len(ms) != len(us) {
		t.Fatalf("Transitions of %d: got %d results, %v", len(us), len(ms), err)
	}
	for i, m := range ms {
		if m.Err != nil || m.Job.ID != us[i].JobID || m.Job.State != us[i].To || m.Job.Reason != us[i].Reason {
			t.Fatalf("update %d: got %s in %s (%q), %v; want %s in %s (%q)", i, m.Job.ID, m.Job.State, m.Job.Reason, m.Err, us[i].JobID, us[i].To, us[i].Reason)
		}
	}
	for i, j := range js {
		got := s.get(t, j.ID)
		last := ms[jobs+i].Job
		if len(got.Events) != 4 || got.Events[2].Reason != fmt.Sprint("submit ", i) || got.Events[3].Reason != fmt.Sprint("end ", i) {
			t.Fatalf("events of job %d: got %+v, want queued, claimed, submit %d, end %d", i, got.Events, i, i)
		}
		got.Events = nil
		sameJob(t, fmt.Sprintf("job %d after a batch of %d", i, len(us)), got, last)
	}
}

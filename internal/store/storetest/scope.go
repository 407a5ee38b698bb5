package storetest

import (
	"errors"
	"testing"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
)

// testQueueScope checks that a holder scoped to some queues (a token
// scoped to them) may not renew, move, release or log under the lease of
// a job of another queue, even with its fencing token and the token that
// claimed it: job.ErrForbidden, before the lease is looked at, and the job
// is left as it was. In its queues it acts as any holder does, and the
// moves of a batch are answered each on its own.
func testQueueScope(t *testing.T, s *suite) {
	c := ctx(t)
	s.queue(t, "q1")
	s.queue(t, "q2")
	s.enqueue(t, "q1", job.Medium)
	s.enqueue(t, "q2", job.Medium)
	js, err := s.ClaimN(c, store.ClaimRequest{Agent: "agent-a", Queues: []string{"q1", "q2"}, TTL: ttl, TokenID: "tok-a"}, 2)
	if err != nil || len(js) != 2 {
		t.Fatalf("claiming 2 jobs: got %d, %v", len(js), err)
	}
	mine, theirs := js[0], js[1]
	if mine.Queue != "q1" || theirs.Queue != "q2" {
		t.Fatalf("claimed jobs of %s and %s, want q1 then q2", mine.Queue, theirs.Queue)
	}
	before := s.get(t, theirs.ID)
	scoped := store.Holder{Agent: "agent-a", TokenID: "tok-a", Queues: []string{"q0", "q1"}}
	tok := theirs.Lease.Token

	_, err = s.Renew(c, theirs.ID, tok, scoped, 2*ttl)
	wantErr(t, "renewing a q2 lease scoped to q0, q1", err, job.ErrForbidden)
	_, err = s.Renew(c, theirs.ID, tok+1, scoped, 2*ttl)
	wantErr(t, "renewing a q2 lease with a stale token, scoped to q0, q1", err, job.ErrForbidden)
	_, err = s.Renew(c, "missing", 1, scoped, ttl)
	wantErr(t, "renewing a missing job, scoped", err, job.ErrNotFound)
	err = s.AppendLogs(c, theirs.ID, tok, scoped, []job.LogLine{{Stream: "stdout", Text: "not my queue"}})
	wantErr(t, "appending logs to a q2 job, scoped to q0, q1", err, job.ErrForbidden)

	inScope := func(u store.Update) store.Update {
		u.Holder = store.Holder{TokenID: scoped.TokenID, Queues: scoped.Queues}
		return u
	}
	us := []store.Update{
		inScope(store.Update{JobID: theirs.ID, Token: tok, To: job.Building, Reason: "not my queue"}),
		inScope(store.Update{JobID: mine.ID, Token: mine.Lease.Token, To: job.Building, Reason: "building"}),
		inScope(store.Update{JobID: theirs.ID, Token: tok, To: job.Queued, Reason: "released, not my queue"}),
		inScope(store.Update{JobID: "missing", Token: 1, To: job.Building}),
		inScope(store.Update{JobID: mine.ID, Token: mine.Lease.Token, To: job.Submitting, Reason: "submitting"}),
	}
	ms, err := s.Transitions(c, us)
	if err != nil {
		t.Fatalf("Transitions: %v", err)
	}
	wantErrs := []error{job.ErrForbidden, nil, job.ErrForbidden, job.ErrNotFound, nil}
	if len(ms) != len(us) {
		t.Fatalf("Transitions of %d updates: got %d results", len(us), len(ms))
	}
	for i, want := range wantErrs {
		if got := ms[i].Err; (want == nil) != (got == nil) || want != nil && !errors.Is(got, want) {
			t.Fatalf("update %d (%s → %s): got error %v, want %v", i, us[i].JobID, us[i].To, got, want)
		}
	}
	if got := ms[4].Job; got.State != job.Submitting || got.Lease == nil || got.Lease.Token != mine.Lease.Token {
		t.Fatalf("q1 job after the batch: got %s, lease %+v; want submitting, still held", got.State, got.Lease)
	}
	_, err = s.Transition(c, inScope(store.Update{JobID: theirs.ID, Token: tok, To: job.Failed, Reason: "not my queue"}))
	wantErr(t, "failing a q2 job alone, scoped to q0, q1", err, job.ErrForbidden)

	after := s.get(t, theirs.ID)
	switch {
	case after.State != job.Claimed || after.Reason != before.Reason:
		t.Fatalf("q2 job after refused updates: got %s (%q), want %s (%q)", after.State, after.Reason, before.State, before.Reason)
	case after.Lease == nil || after.Lease.Token != tok || !after.Lease.ExpiresAt.Equal(before.Lease.ExpiresAt):
		t.Fatalf("q2 lease after refused updates: got %+v, want %+v", after.Lease, before.Lease)
	case len(after.Events) != len(before.Events):
		t.Fatalf("q2 job's events after refused updates: got %d, want %d", len(after.Events), len(before.Events))
	}
	if logs, err := s.ReadLogs(c, theirs.ID, 0, 0, 0); err != nil || len(logs) != 0 {
		t.Fatalf("q2 logs after a refused append: got %v, %v; want none", logs, err)
	}

	// In its queues, the other checks still apply, and then it acts.
	_, err = s.Renew(c, mine.ID, mine.Lease.Token, store.Holder{Agent: "agent-b", TokenID: "tok-a", Queues: []string{"q1"}}, ttl)
	wantErr(t, "renewing agent-a's q1 lease as agent-b, scoped to q1", err, job.ErrLeaseLost)
	if r, err := s.Renew(c, mine.ID, mine.Lease.Token, scoped, 2*ttl); err != nil || r.Lease == nil || !r.Lease.ExpiresAt.After(mine.Lease.ExpiresAt) {
		t.Fatalf("renewing a q1 lease scoped to q0, q1: got %+v, %v; want it extended past %v", r.Lease, err, mine.Lease.ExpiresAt)
	}
	if err := s.AppendLogs(c, mine.ID, mine.Lease.Token, scoped, []job.LogLine{{Stream: "stdout", Text: "mine"}}); err != nil {
		t.Fatalf("appending logs to a q1 job, scoped to q0, q1: %v", err)
	}
	// A holder scoped to no queue may act on any.
	if _, err := s.Renew(c, theirs.ID, tok, store.Holder{Agent: "agent-a", TokenID: "tok-a"}, ttl); err != nil {
		t.Fatalf("renewing the q2 lease unscoped: %v", err)
	}
	if _, err := s.Transition(c, store.Update{JobID: theirs.ID, Token: tok, To: job.Building, Holder: store.Holder{TokenID: "tok-a"}}); err != nil {
		t.Fatalf("moving the q2 job unscoped: %v", err)
	}
}

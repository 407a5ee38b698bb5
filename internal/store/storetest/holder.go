package storetest

import (
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
)

// testLeaseTokenID checks that a lease records the API token that claimed
// it, and that every update under it (renew, transition, release, logs)
// from another token is refused, while its own token, and a caller that
// names none (an admin, or a server without tokens), may act.
func testLeaseTokenID(t *testing.T, s *suite) {
	c := ctx(t)
	s.queue(t, "q")
	s.enqueue(t, "q", job.Medium)
	j, err := s.Claim(c, store.ClaimRequest{Agent: "agent-a", Queues: []string{"q"}, TTL: ttl, TokenID: "tok-a"})
	if err != nil {
		t.Fatalf("claiming: %v", err)
	}
	if j.Lease == nil || j.Lease.TokenID != "tok-a" {
		t.Fatalf("claimed lease: got %+v, want token id tok-a", j.Lease)
	}
	if got := s.get(t, j.ID); got.Lease == nil || got.Lease.TokenID != "tok-a" {
		t.Fatalf("GetJob after claim: got lease %+v, want token id tok-a", got.Lease)
	}
	tok := j.Lease.Token
	other := store.Holder{TokenID: "tok-b"}

	_, err = s.Renew(c, j.ID, tok, other, ttl)
	wantErr(t, "renewing tok-a's lease as tok-b", err, job.ErrLeaseLost)
	_, err = s.Renew(c, j.ID, tok, store.Holder{Agent: "agent-a", TokenID: "tok-b"}, ttl)
	wantErr(t, "renewing tok-a's lease as agent-a with tok-b", err, job.ErrLeaseLost)
	err = s.AppendLogs(c, j.ID, tok, other, []job.LogLine{{Stream: "stdout", Text: "not mine"}})
	wantErr(t, "appending logs under tok-a's lease as tok-b", err, job.ErrLeaseLost)
	_, err = s.Transition(c, store.Update{JobID: j.ID, Token: tok, To: job.Building, Holder: store.Holder{TokenID: "tok-b"}})
	wantErr(t, "moving tok-a's job as tok-b", err, job.ErrLeaseLost)
	_, err = s.Transition(c, store.Update{JobID: j.ID, Token: tok, To: job.Queued, Reason: "stolen", Holder: store.Holder{TokenID: "tok-b"}})
	wantErr(t, "releasing tok-a's job as tok-b", err, job.ErrLeaseLost)
	if got := s.get(t, j.ID); got.State != job.Claimed || got.Lease == nil || got.Lease.TokenID != "tok-a" {
		t.Fatalf("after refused updates: got state %s lease %+v, want claimed, held with tok-a", got.State, got.Lease)
	}
	if logs, err := s.ReadLogs(c, j.ID, 0, 0, 0); err != nil || len(logs) != 0 {
		t.Fatalf("logs after a refused append: got %v, %v; want none", logs, err)
	}

	mine := store.Holder{TokenID: "tok-a"}
	if r, err := s.Renew(c, j.ID, tok, store.Holder{Agent: "agent-a", TokenID: "tok-a"}, ttl); err != nil || r.Lease == nil || r.Lease.TokenID != "tok-a" {
		t.Fatalf("renewing as tok-a: got %+v, %v; want the lease, still with tok-a", r.Lease, err)
	}
	if _, err := s.Renew(c, j.ID, tok, store.Holder{}, ttl); err != nil {
		t.Fatalf("renewing without a token id (admin): %v", err)
	}
	if err := s.AppendLogs(c, j.ID, tok, mine, []job.LogLine{{Stream: "stdout", Text: "mine"}}); err != nil {
		t.Fatalf("appending logs as tok-a: %v", err)
	}
	if err := s.AppendLogs(c, j.ID, tok, store.Holder{}, []job.LogLine{{Stream: "stdout", Text: "admin"}}); err != nil {
		t.Fatalf("appending logs without a token id (admin): %v", err)
	}
	moved, err := s.Transition(c, store.Update{JobID: j.ID, Token: tok, To: job.Building, Holder: store.Holder{TokenID: "tok-a"}})
	if err != nil || moved.Lease == nil || moved.Lease.TokenID != "tok-a" {
		t.Fatalf("moving as tok-a: got %+v, %v; want building, still held with tok-a", moved.Lease, err)
	}
	if got := s.get(t, j.ID); got.Lease == nil || got.Lease.TokenID != "tok-a" {
		t.Fatalf("GetJob after a move: got lease %+v, want token id tok-a kept", got.Lease)
	}
	if _, err := s.Transition(c, store.Update{JobID: j.ID, Token: tok, To: job.Submitting}); err != nil {
		t.Fatalf("moving without a token id (admin): %v", err)
	}
	if _, err := s.Transition(c, store.Update{JobID: j.ID, Token: tok, To: job.Queued, Reason: "handed over", Holder: store.Holder{TokenID: "tok-a"}}); err != nil {
		t.Fatalf("releasing as tok-a: %v", err)
	}

	// A lease claimed without a token (no auth, or before leases recorded
	// one) records none, and any token may act under it with its fencing
	// token, as before.
	j2, err := s.Claim(c, store.ClaimRequest{Agent: "agent-c", Queues: []string{"q"}, TTL: ttl})
	if err != nil {
		t.Fatalf("claiming again without a token id: %v", err)
	}
	if j2.ID != j.ID || j2.Lease == nil || j2.Lease.TokenID != "" {
		t.Fatalf("reclaimed job: got %s lease %+v, want %s with no token id (the release cleared it)", j2.ID, j2.Lease, j.ID)
	}
	tok2 := j2.Lease.Token
	if _, err := s.Renew(c, j2.ID, tok2, other, ttl); err != nil {
		t.Fatalf("renewing a lease without a token id as tok-b: %v", err)
	}
	if err := s.AppendLogs(c, j2.ID, tok2, other, []job.LogLine{{Text: "any"}}); err != nil {
		t.Fatalf("appending logs under a lease without a token id as tok-b: %v", err)
	}
	if _, err := s.Transition(c, store.Update{JobID: j2.ID, Token: tok2, To: job.Queued, Reason: "handed over", Holder: store.Holder{TokenID: "tok-b"}}); err != nil {
		t.Fatalf("releasing a lease without a token id as tok-b: %v", err)
	}

	// An expired lease forgets its token id too.
	j3, err := s.Claim(c, store.ClaimRequest{Agent: "agent-a", Queues: []string{"q"}, TTL: time.Millisecond, TokenID: "tok-a"})
	if err != nil || j3.Lease == nil || j3.Lease.TokenID != "tok-a" {
		t.Fatalf("claiming with tok-a: got %+v, %v; want a lease with tok-a", j3.Lease, err)
	}
	if _, err := s.ExpireLeases(c, time.Now().Add(time.Second)); err != nil {
		t.Fatalf("expiring: %v", err)
	}
	j4, err := s.Claim(c, store.ClaimRequest{Agent: "agent-b", Queues: []string{"q"}, TTL: ttl, TokenID: "tok-b"})
	if err != nil || j4.Lease == nil || j4.Lease.TokenID != "tok-b" {
		t.Fatalf("claiming an expired job with tok-b: got %+v, %v; want a lease with tok-b", j4.Lease, err)
	}
	_, err = s.Renew(c, j4.ID, j4.Lease.Token, mine, ttl)
	wantErr(t, "renewing tok-b's new lease as tok-a", err, job.ErrLeaseLost)
}

// testClaimNTokenID checks that every lease of a claim of several jobs,
// from queues with and without a cap, records the claiming token.
func testClaimNTokenID(t *testing.T, s *suite) {
	c := ctx(t)
	if _, err := s.CreateQueue(c, job.Queue{Name: "capped", Resource: job.LocalProcess, MaxRunning: 2}); err != nil {
		t.Fatalf("creating a capped queue: %v", err)
	}
	s.queue(t, "free")
	for range 2 {
		s.enqueue(t, "capped", job.Medium)
		s.enqueue(t, "free", job.Medium)
	}
	js, err := s.ClaimN(c, store.ClaimRequest{Agent: "agent-a", Queues: []string{"capped", "free"}, TTL: ttl, TokenID: "tok-a"}, 4)
	if err != nil || len(js) != 4 {
		t.Fatalf("claiming 4 jobs: got %d, %v; want 4", len(js), err)
	}
	for _, j := range js {
		if j.Lease == nil || j.Lease.TokenID != "tok-a" {
			t.Fatalf("job %s of queue %s: got lease %+v, want token id tok-a", j.ID, j.Queue, j.Lease)
		}
		if got := s.get(t, j.ID); got.Lease == nil || got.Lease.TokenID != "tok-a" {
			t.Fatalf("GetJob %s: got lease %+v, want token id tok-a", j.ID, got.Lease)
		}
	}
}

// OldLease checks a lease that a store opened before leases recorded their
// API token left behind: job id, held by agent "agent-old" with token 1,
// in state running. After the migration it records no token id, and any
// caller's token may still renew it, add logs and move it with its
// fencing token, as before.
func OldLease(t *testing.T, s store.Store, id string) {
	t.Helper()
	c := t.Context()
	j, err := s.GetJob(c, id)
	if err != nil {
		t.Fatalf("reading the old job: %v", err)
	}
	if j.Lease == nil || j.Lease.Agent != "agent-old" || j.Lease.Token != 1 || j.Lease.TokenID != "" {
		t.Fatalf("old lease after migrating: got %+v, want agent-old's, token 1, no token id", j.Lease)
	}
	anyToken := store.Holder{TokenID: "tok-new"}
	if _, err := s.Renew(c, id, 1, store.Holder{Agent: "agent-old", TokenID: "tok-new"}, ttl); err != nil {
		t.Fatalf("renewing the old lease: %v", err)
	}
	if err := s.AppendLogs(c, id, 1, anyToken, []job.LogLine{{Text: "still here"}}); err != nil {
		t.Fatalf("appending logs under the old lease: %v", err)
	}
	done, err := s.Transition(c, store.Update{JobID: id, Token: 1, To: job.Finished, Reason: "done", Holder: store.Holder{TokenID: "tok-new"}})
	if err != nil || done.State != job.Finished {
		t.Fatalf("finishing the old job: got %s, %v; want finished", done.State, err)
	}
}

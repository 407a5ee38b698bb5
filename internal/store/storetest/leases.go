package storetest

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
)

func testPriorityOrder(t *testing.T, s *suite) {
	c := ctx(t)
	s.queue(t, "q")
	var want []string
	byPrio := map[job.Priority][]string{}
	for _, p := range []job.Priority{job.Low, job.Critical, job.Medium, job.High, job.Critical, job.Low, job.Medium, job.High} {
		j := s.enqueue(t, "q", p)
		byPrio[p] = append(byPrio[p], j.ID)
	}
	for _, p := range []job.Priority{job.Critical, job.High, job.Medium, job.Low} {
		want = append(want, byPrio[p]...)
	}
	var got []string
	for range want {
		j := s.claim(t, "agent-1", "q")
		if j.State != job.Claimed {
			t.Fatalf("claimed job: got state %s, want claimed", j.State)
		}
		got = append(got, j.ID)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("claim order: got %v, want %v (by priority, then oldest first)", got, want)
	}
	_, err := s.Claim(c, store.ClaimRequest{Agent: "agent-1", Queues: []string{"q"}, TTL: ttl})
	wantErr(t, "claiming from an empty queue", err, job.ErrNoJob)
}

func testClaimQueueOrder(t *testing.T, s *suite) {
	c := ctx(t)
	s.queue(t, "first")
	s.queue(t, "second")
	s.queue(t, "empty")
	low := s.enqueue(t, "first", job.Low)
	crit := s.enqueue(t, "second", job.Critical)

	before := time.Now()
	j := s.claim(t, "agent-1", "empty", "first", "second")
	if j.ID != low.ID {
		t.Fatalf("claim from [empty first second]: got job %s of %s, want %s: the first queue that has a job wins", j.ID, j.Queue, low.ID)
	}
	if j.Lease.Agent != "agent-1" || j.Lease.Token <= 0 || j.Lease.ExpiresAt.Before(before.Add(ttl-time.Minute)) {
		t.Fatalf("lease: got %+v, want agent-1, a positive token, expiring in about %v", j.Lease, ttl)
	}
	got := s.get(t, j.ID)
	last := got.Events[len(got.Events)-1]
	if last.From != job.Queued || last.To != job.Claimed || last.Actor != "agent-1" || last.Attempt != 1 {
		t.Fatalf("claim event: got %+v, want queued → claimed by agent-1, attempt 1", last)
	}
	got.Events = nil
	sameJob(t, "GetJob after Claim", got, j)

	j = s.claim(t, "agent-1", "first", "second")
	if j.ID != crit.ID {
		t.Fatalf("second claim: got %s, want %s", j.ID, crit.ID)
	}
	_, err := s.Claim(c, store.ClaimRequest{Agent: "agent-1", Queues: []string{"first", "second", "missing"}, TTL: ttl})
	wantErr(t, "claiming from drained queues", err, job.ErrNoJob)
	_, err = s.Claim(c, store.ClaimRequest{Agent: "agent-1", TTL: ttl})
	wantErr(t, "claiming from no queue", err, job.ErrNoJob)
}

func testConcurrentClaims(t *testing.T, s *suite) {
	const jobs, claimers = 200, 8
	c := ctx(t)
	s.queue(t, "q")
	for range jobs {
		s.enqueue(t, "q", job.Medium)
	}
	var (
		mu      sync.Mutex
		claimed = map[string]int{}
		tokens  = map[string]int64{}
		wg      sync.WaitGroup
		errs    = make(chan error, claimers)
	)
	for i := range claimers {
		wg.Go(func() {
			agent := fmt.Sprintf("agent-%d", i)
			for {
				j, err := s.Claim(c, store.ClaimRequest{Agent: agent, Queues: []string{"q"}, TTL: ttl})
				if errors.Is(err, job.ErrNoJob) {
					return
				}
				if err != nil {
					errs <- fmt.Errorf("%s claiming: %w", agent, err)
					return
				}
				if j.Lease == nil || j.Lease.Agent != agent {
					errs <- fmt.Errorf("%s claimed job %s with lease %+v", agent, j.ID, j.Lease)
					return
				}
				mu.Lock()
				claimed[j.ID]++
				tokens[j.ID] = j.Lease.Token
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(claimed) != jobs {
		t.Fatalf("got %d distinct jobs claimed, want %d", len(claimed), jobs)
	}
	for id, n := range claimed {
		if n != 1 {
			t.Fatalf("job %s: claimed %d times, want once", id, n)
		}
	}
	js, err := s.ListJobs(c, store.JobFilter{Queue: "q", State: job.Claimed})
	if err != nil {
		t.Fatalf("listing jobs: %v", err)
	}
	if len(js) != jobs {
		t.Fatalf("got %d claimed jobs in the store, want %d", len(js), jobs)
	}
	for _, j := range js {
		if j.Lease == nil || j.Lease.Token != tokens[j.ID] {
			t.Fatalf("job %s: got lease %+v, want the token %d its claimer saw", j.ID, j.Lease, tokens[j.ID])
		}
	}
}

func testLeaseExpiry(t *testing.T, s *suite) {
	c := ctx(t)
	s.queue(t, "q")
	s.enqueue(t, "q", job.Medium)
	s.enqueue(t, "q", job.Medium)
	short, err := s.Claim(c, store.ClaimRequest{Agent: "agent-old", Queues: []string{"q"}, TTL: time.Millisecond})
	if err != nil {
		t.Fatalf("claiming: %v", err)
	}
	long := s.claim(t, "agent-old", "q")
	old := short.Lease.Token
	if old != 1 {
		t.Fatalf("first claim: got token %d, want 1", old)
	}
	short, err = s.Transition(c, store.Update{JobID: short.ID, Token: old, To: job.Submitting, ExternalID: "train-1-1"})
	if err != nil {
		t.Fatalf("submitting: %v", err)
	}

	expired, err := s.ExpireLeases(c, time.Now().Add(time.Second))
	if err != nil {
		t.Fatalf("expiring leases: %v", err)
	}
	if !slices.Equal(expired, []string{short.ID}) {
		t.Fatalf("expired: got %v, want [%s] (the other lease lasts an hour)", expired, short.ID)
	}
	got := s.get(t, short.ID)
	if got.State != job.Queued || got.Lease != nil || got.Attempt != 1 || got.ExternalID != "train-1-1" {
		t.Fatalf("after expiry: got state %s, lease %+v, attempt %d, external id %q; want queued, none, 1, train-1-1",
			got.State, got.Lease, got.Attempt, got.ExternalID)
	}
	last := got.Events[len(got.Events)-1]
	if last.From != job.Submitting || last.To != job.Queued || last.Actor != "server" || last.Reason == "" || last.Attempt != 1 {
		t.Fatalf("expiry event: got %+v, want submitting → queued by server with a reason, attempt 1", last)
	}
	if got := s.get(t, long.ID); got.State != job.Claimed || got.Lease == nil {
		t.Fatalf("the job with a live lease: got state %s, lease %v; want claimed, held", got.State, got.Lease)
	}
	again, err := s.ExpireLeases(c, time.Now().Add(time.Second))
	if err != nil || len(again) != 0 {
		t.Fatalf("expiring again: got %v, %v; want nothing", again, err)
	}

	// Stale before anyone re-claims: the lease is gone.
	_, err = s.Transition(c, store.Update{JobID: short.ID, Token: old, To: job.Starting})
	wantErr(t, "moving an expired job", err, job.ErrLeaseLost)

	next := s.claim(t, "agent-new", "q")
	if next.ID != short.ID || next.Lease.Token <= old || next.ExternalID != "train-1-1" || next.Attempt != 1 {
		t.Fatalf("re-claim: got job %s token %d external id %q attempt %d; want %s, token > %d, train-1-1, attempt 1",
			next.ID, next.Lease.Token, next.ExternalID, next.Attempt, short.ID, old)
	}
	_, err = s.Transition(c, store.Update{JobID: short.ID, Token: old, To: job.Starting})
	wantErr(t, "moving with the old token", err, job.ErrLeaseLost)
	_, err = s.Renew(c, short.ID, old, store.Holder{}, ttl)
	wantErr(t, "renewing with the old token", err, job.ErrLeaseLost)
	err = s.AppendLogs(c, short.ID, old, store.Holder{}, []job.LogLine{{Stream: "stdout", Text: "stale"}})
	wantErr(t, "appending logs with the old token", err, job.ErrLeaseLost)
	s.move(t, next, next.Lease.Token, job.Starting, job.Running, job.Finished)
}

func testFencing(t *testing.T, s *suite) {
	c := ctx(t)
	s.queue(t, "q")
	s.enqueue(t, "q", job.Medium)
	j := s.claim(t, "agent-1", "q")
	token := j.Lease.Token
	for _, bad := range []int64{token + 1, token - 1, 0} {
		_, err := s.Transition(c, store.Update{JobID: j.ID, Token: bad, To: job.Building})
		wantErr(t, fmt.Sprintf("moving with token %d", bad), err, job.ErrLeaseLost)
		_, err = s.Renew(c, j.ID, bad, store.Holder{}, ttl)
		wantErr(t, fmt.Sprintf("renewing with token %d", bad), err, job.ErrLeaseLost)
		err = s.AppendLogs(c, j.ID, bad, store.Holder{}, []job.LogLine{{Text: "x"}})
		wantErr(t, fmt.Sprintf("appending logs with token %d", bad), err, job.ErrLeaseLost)
	}
	if got := s.get(t, j.ID); got.State != job.Claimed || len(got.Events) != 2 {
		t.Fatalf("after refused updates: got state %s with %d events, want claimed with 2", got.State, len(got.Events))
	}
	if lines, err := s.ReadLogs(c, j.ID, 0, 0, 0); err != nil || len(lines) != 0 {
		t.Fatalf("logs after refused appends: got %d lines, %v; want none", len(lines), err)
	}

	s.move(t, j, token, job.Building, job.Finished)
	// The lease was released: even the right token is stale now.
	_, err := s.Transition(c, store.Update{JobID: j.ID, Token: token, To: job.Failed})
	wantErr(t, "moving a finished job", err, job.ErrLeaseLost)
	_, err = s.Renew(c, j.ID, token, store.Holder{}, ttl)
	wantErr(t, "renewing a finished job", err, job.ErrLeaseLost)

	_, err = s.Transition(c, store.Update{JobID: "missing", Token: token, To: job.Building})
	wantErr(t, "moving a missing job", err, job.ErrNotFound)
}

func testRenew(t *testing.T, s *suite) {
	c := ctx(t)
	s.queue(t, "q")
	s.enqueue(t, "q", job.Medium)
	j, err := s.Claim(c, store.ClaimRequest{Agent: "agent-1", Queues: []string{"q"}, TTL: time.Millisecond})
	if err != nil {
		t.Fatalf("claiming: %v", err)
	}
	// Another agent with the right token may not renew it: only its holder.
	_, err = s.Renew(c, j.ID, j.Lease.Token, store.Holder{Agent: "agent-2"}, ttl)
	wantErr(t, "renewing agent-1's lease as agent-2", err, job.ErrLeaseLost)
	r, err := s.Renew(c, j.ID, j.Lease.Token, store.Holder{Agent: "agent-1"}, ttl)
	if err != nil {
		t.Fatalf("renewing: %v", err)
	}
	if r.Lease == nil || r.Lease.Token != j.Lease.Token || r.Lease.Agent != "agent-1" || !r.Lease.ExpiresAt.After(j.Lease.ExpiresAt.Add(ttl/2)) {
		t.Fatalf("renewed lease: got %+v, want the same token and agent, expiring about %v later than %v", r.Lease, ttl, j.Lease.ExpiresAt)
	}
	if expired, err := s.ExpireLeases(c, time.Now().Add(time.Second)); err != nil || len(expired) != 0 {
		t.Fatalf("expiring a renewed lease: got %v, %v; want nothing expired", expired, err)
	}
	if got := s.get(t, j.ID); got.Lease == nil || !got.Lease.ExpiresAt.Equal(r.Lease.ExpiresAt) {
		t.Fatalf("GetJob after Renew: got lease %+v, want %+v", got.Lease, r.Lease)
	}
	_, err = s.Renew(c, "missing", 1, store.Holder{}, ttl)
	wantErr(t, "renewing a missing job", err, job.ErrNotFound)
}

// testLifecycle tries every move from every held state: the store allows
// exactly those that job.CanTransition allows.
func testLifecycle(t *testing.T, s *suite) {
	c := ctx(t)
	s.queue(t, "q")
	path := []job.State{job.Claimed, job.Building, job.Submitting, job.Starting, job.Running}
	for i, from := range path {
		for _, to := range job.States {
			s.enqueue(t, "q", job.Medium)
			j := s.claim(t, "agent-1", "q")
			token := j.Lease.Token
			j = s.move(t, j, token, path[1:i+1]...)
			got, err := s.Transition(c, store.Update{JobID: j.ID, Token: token, To: to, Reason: "why", Actor: "agent-1"})
			if !job.CanTransition(from, to) {
				wantErr(t, fmt.Sprintf("moving %s → %s", from, to), err, job.ErrConflict)
				if after := s.get(t, j.ID); after.State != from || after.Lease == nil {
					t.Fatalf("after a refused %s → %s: got state %s, lease %v; want %s, still held", from, to, after.State, after.Lease, from)
				}
			} else {
				if err != nil {
					t.Fatalf("moving %s → %s: %v", from, to, err)
				}
				release := to.Terminal() || to == job.Queued
				if got.State != to || got.Reason != "why" || (got.Lease == nil) != release {
					t.Fatalf("moved %s → %s: got state %s, reason %q, lease %+v; want %s, why, lease released %v",
						from, to, got.State, got.Reason, got.Lease, to, release)
				}
				if !release && got.Lease.Token != token {
					t.Fatalf("moved %s → %s: got token %d, want %d kept", from, to, got.Lease.Token, token)
				}
				after := s.get(t, j.ID)
				last := after.Events[len(after.Events)-1]
				if last.From != from || last.To != to || last.Reason != "why" || last.Actor != "agent-1" {
					t.Fatalf("event of %s → %s: got %+v", from, to, last)
				}
				after.Events = nil
				sameJob(t, "GetJob after Transition", after, got)
			}
			// Leave the queue empty for the next round.
			if cur := s.get(t, j.ID); cur.Lease != nil {
				s.move(t, cur, token, job.Finished)
			} else if cur.State == job.Queued {
				if _, err := s.Cancel(c, j.ID, ""); err != nil {
					t.Fatalf("canceling: %v", err)
				}
			}
		}
	}
}

func testExternalIDAndImage(t *testing.T, s *suite) {
	c := ctx(t)
	s.queue(t, "q")
	s.enqueue(t, "q", job.Medium)
	j := s.claim(t, "agent-1", "q")
	token := j.Lease.Token
	j, err := s.Transition(c, store.Update{JobID: j.ID, Token: token, To: job.Building, Image: "registry.example/repo:sha256-abc"})
	if err != nil {
		t.Fatalf("building: %v", err)
	}
	j, err = s.Transition(c, store.Update{JobID: j.ID, Token: token, To: job.Submitting, ExternalID: "slipway-abc-1"})
	if err != nil {
		t.Fatalf("submitting: %v", err)
	}
	j, err = s.Transition(c, store.Update{JobID: j.ID, Token: token, To: job.Running, Outputs: map[string]string{"a": "1", "b": "2"}})
	if err != nil {
		t.Fatalf("running: %v", err)
	}
	j, err = s.Transition(c, store.Update{JobID: j.ID, Token: token, To: job.Finished, Outputs: map[string]string{"b": "3", "model_artifacts": "s3://b/m.tar.gz"}})
	if err != nil {
		t.Fatalf("finishing: %v", err)
	}
	if want := map[string]string{"a": "1", "b": "3", "model_artifacts": "s3://b/m.tar.gz"}; !maps.Equal(j.Outputs, want) {
		t.Fatalf("outputs after two updates: got %v, want %v merged", j.Outputs, want)
	}
	if j.Image != "registry.example/repo:sha256-abc" || j.ExternalID != "slipway-abc-1" {
		t.Fatalf("after updates without them: got image %q, external id %q; want both kept", j.Image, j.ExternalID)
	}
	if j.Spec.Image != spec(0).Image {
		t.Fatalf("spec image: got %q, want %q unchanged", j.Spec.Image, spec(0).Image)
	}
	got := s.get(t, j.ID)
	got.Events = nil
	sameJob(t, "GetJob after updates", got, j)
}

package storetest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
)

// testMaxRunning checks that a queue at its cap of held jobs yields none,
// that a job leaving the held states frees its slot, and that the cap is
// kept, changed and read back.
func testMaxRunning(t *testing.T, s *suite) {
	c := ctx(t)
	q, err := s.CreateQueue(c, job.Queue{Name: "capped", Resource: job.LocalProcess, MaxRunning: 2})
	if err != nil {
		t.Fatalf("creating a capped queue: %v", err)
	}
	if q.MaxRunning != 2 {
		t.Fatalf("created queue: got max_running %d, want 2", q.MaxRunning)
	}
	if got, err := s.GetQueue(c, "capped"); err != nil || got.MaxRunning != 2 {
		t.Fatalf("GetQueue: got max_running %d, %v; want 2", got.MaxRunning, err)
	}
	s.queue(t, "free")
	for range 4 {
		s.enqueue(t, "capped", job.Medium)
	}
	free := s.enqueue(t, "free", job.Medium)
	a := s.claim(t, "agent-1", "capped")
	b := s.claim(t, "agent-2", "capped")
	_, err = s.Claim(c, store.ClaimRequest{Agent: "agent-3", Queues: []string{"capped"}, TTL: ttl})
	wantErr(t, "claiming from a queue at its max_running", err, job.ErrNoJob)
	// A capped queue does not stop the claim from trying the next queue.
	if j := s.claim(t, "agent-3", "capped", "free"); j.ID != free.ID {
		t.Fatalf("claim from [capped free]: got %s of %s, want %s of free", j.ID, j.Queue, free.ID)
	}
	// Every held state takes a slot, not only running.
	s.move(t, a, a.Lease.Token, job.Building, job.Submitting, job.Starting, job.Running)
	_, err = s.Claim(c, store.ClaimRequest{Agent: "agent-3", Queues: []string{"capped"}, TTL: ttl})
	wantErr(t, "claiming while the capped jobs run", err, job.ErrNoJob)
	s.move(t, a, a.Lease.Token, job.Finished)
	s.claim(t, "agent-3", "capped")
	// Handing a job back frees its slot too.
	s.move(t, b, b.Lease.Token, job.Queued)
	s.claim(t, "agent-4", "capped")
	_, err = s.Claim(c, store.ClaimRequest{Agent: "agent-5", Queues: []string{"capped"}, TTL: ttl})
	wantErr(t, "claiming at the cap again", err, job.ErrNoJob)

	q.MaxRunning = 3
	if q, err = s.UpdateQueue(c, q); err != nil || q.MaxRunning != 3 {
		t.Fatalf("raising the cap: got max_running %d, %v; want 3", q.MaxRunning, err)
	}
	s.claim(t, "agent-5", "capped")
	q.MaxRunning = 0
	if q, err = s.UpdateQueue(c, q); err != nil || q.MaxRunning != 0 {
		t.Fatalf("lifting the cap: got max_running %d, %v; want 0", q.MaxRunning, err)
	}
	_, err = s.CreateQueue(c, job.Queue{Name: "negative", Resource: job.LocalProcess, MaxRunning: -1})
	wantErr(t, "creating a queue with max_running -1", err, job.ErrInvalid)
	q.MaxRunning = -1
	_, err = s.UpdateQueue(c, q)
	wantErr(t, "updating max_running to -1", err, job.ErrInvalid)
}

// testMaxRunningConcurrent has many claimers race for a queue capped at
// 3: never more than 3 are held at once, and all jobs get claimed.
func testMaxRunningConcurrent(t *testing.T, s *suite) {
	const jobs, claimers, limit = 30, 6, 3
	c := ctx(t)
	if _, err := s.CreateQueue(c, job.Queue{Name: "q", Resource: job.LocalProcess, MaxRunning: limit}); err != nil {
		t.Fatalf("creating queue: %v", err)
	}
	for range jobs {
		s.enqueue(t, "q", job.Medium)
	}
	var (
		mu         sync.Mutex
		held, most int
		done       int
		wg         sync.WaitGroup
		errs       = make(chan error, claimers)
	)
	for i := range claimers {
		wg.Go(func() {
			agent := fmt.Sprintf("agent-%d", i)
			for {
				mu.Lock()
				finished := done == jobs
				mu.Unlock()
				if finished {
					return
				}
				j, err := s.Claim(c, store.ClaimRequest{Agent: agent, Queues: []string{"q"}, TTL: ttl})
				if errors.Is(err, job.ErrNoJob) {
					continue
				}
				if err != nil {
					errs <- fmt.Errorf("%s claiming: %w", agent, err)
					return
				}
				mu.Lock()
				held++
				most = max(most, held)
				// Counted down before the transition, so that a claim the
				// freed slot admits can never be counted with this one.
				held--
				done++
				mu.Unlock()
				if _, err := s.Transition(c, store.Update{JobID: j.ID, Token: j.Lease.Token, To: job.Finished, Reason: "done"}); err != nil {
					errs <- fmt.Errorf("%s finishing %s: %w", agent, j.ID, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if most > limit {
		t.Fatalf("held at once: got %d, want at most %d", most, limit)
	}
	js, err := s.ListJobs(c, store.JobFilter{Queue: "q", State: job.Finished})
	if err != nil || len(js) != jobs {
		t.Fatalf("finished jobs: got %d, %v; want %d", len(js), err, jobs)
	}
}

// testIdempotentEnqueue checks that one key makes one job, even when many
// enqueues bring it at once, and that a second enqueue returns the first job.
func testIdempotentEnqueue(t *testing.T, s *suite) {
	c := ctx(t)
	s.queue(t, "q")
	first, err := s.Enqueue(c, job.Job{ID: job.NewID("j"), Queue: "q", Spec: spec(1), IdempotencyKey: "launch-1"}, nil)
	if err != nil {
		t.Fatalf("enqueueing with a key: %v", err)
	}
	if first.IdempotencyKey != "launch-1" {
		t.Fatalf("enqueued job: got key %q, want launch-1", first.IdempotencyKey)
	}
	again, err := s.Enqueue(c, job.Job{ID: job.NewID("j"), Queue: "q", Spec: spec(2), IdempotencyKey: "launch-1"}, nil)
	if err != nil {
		t.Fatalf("enqueueing the same key again: %v", err)
	}
	if again.ID != first.ID || again.Spec.Image != first.Spec.Image {
		t.Fatalf("same key again: got job %s (%s), want the first, %s (%s)", again.ID, again.Spec.Image, first.ID, first.Spec.Image)
	}
	if got := s.get(t, first.ID); got.IdempotencyKey != "launch-1" {
		t.Fatalf("GetJob: got key %q, want launch-1", got.IdempotencyKey)
	}

	const racers = 12
	var wg sync.WaitGroup
	ids := make([]string, racers)
	errs := make([]error, racers)
	for i := range racers {
		wg.Go(func() {
			j, err := s.Enqueue(c, job.Job{ID: job.NewID("j"), Queue: "q", Spec: spec(i), IdempotencyKey: "race"}, nil)
			ids[i], errs[i] = j.ID, err
		})
	}
	wg.Wait()
	for i := range racers {
		if errs[i] != nil {
			t.Fatalf("racer %d: %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("racers with one key got jobs %v, want one job", ids)
		}
	}
	all, err := s.ListJobs(c, store.JobFilter{Queue: "q"})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 {
		t.Fatalf("jobs stored for two keys: got %d, want 2", len(all))
	}
	// No key: every enqueue is a job of its own.
	a, b := s.enqueue(t, "q", job.Medium), s.enqueue(t, "q", job.Medium)
	if a.ID == b.ID || a.IdempotencyKey != "" {
		t.Fatalf("enqueues without a key: got %s and %s (key %q), want two jobs without a key", a.ID, b.ID, a.IdempotencyKey)
	}
	// A key on a missing queue is still not found, and takes nothing.
	_, err = s.Enqueue(c, job.Job{ID: job.NewID("j"), Queue: "missing", Spec: spec(0), IdempotencyKey: "k-missing"}, nil)
	wantErr(t, "enqueueing with a key into a missing queue", err, job.ErrNotFound)
	for _, bad := range []string{strings.Repeat("k", store.MaxIdempotencyKey+1), "tab\tkey", "nul\x00"} {
		_, err = s.Enqueue(c, job.Job{ID: job.NewID("j"), Queue: "q", Spec: spec(0), IdempotencyKey: bad}, nil)
		wantErr(t, fmt.Sprintf("enqueueing with key %q", bad), err, job.ErrInvalid)
	}
}

// testRelease checks the hand-over of a held job: back to queued at once,
// keeping its attempt and external id, the old token refused, and the next
// claim getting a new token and the external id to re-attach to.
func testRelease(t *testing.T, s *suite) {
	c := ctx(t)
	s.queue(t, "q")
	s.enqueue(t, "q", job.Medium)
	j := s.claim(t, "agent-1", "q")
	old := j.Lease.Token
	s.move(t, j, old, job.Submitting)
	if _, err := s.Transition(c, store.Update{JobID: j.ID, Token: old, To: job.Starting, Reason: "started as tj-1", ExternalID: "tj-1"}); err != nil {
		t.Fatal(err)
	}
	r, err := s.Transition(c, store.Update{JobID: j.ID, Token: old, To: job.Queued, Reason: "agent shutting down: handed over"})
	if err != nil {
		t.Fatalf("releasing: %v", err)
	}
	if r.State != job.Queued || r.Lease != nil || r.ExternalID != "tj-1" || r.Attempt != 1 {
		t.Fatalf("released job: got %s lease %+v external id %q attempt %d, want queued, no lease, tj-1, attempt 1", r.State, r.Lease, r.ExternalID, r.Attempt)
	}
	for _, u := range []store.Update{{To: job.Running}, {To: job.Finished}, {To: job.Queued}} {
		u.JobID, u.Token = j.ID, old
		_, err := s.Transition(c, u)
		wantErr(t, "moving a released job with its old token to "+string(u.To), err, job.ErrLeaseLost)
	}
	_, err = s.Renew(c, j.ID, old, store.Holder{}, ttl)
	wantErr(t, "renewing a released lease", err, job.ErrLeaseLost)
	err = s.AppendLogs(c, j.ID, old, store.Holder{}, []job.LogLine{{Stream: "stdout", Text: "late"}})
	wantErr(t, "logging under a released lease", err, job.ErrLeaseLost)

	n := s.claim(t, "agent-2", "q")
	if n.ID != j.ID || n.ExternalID != "tj-1" || n.Lease.Token <= old {
		t.Fatalf("claim after release: got %s external id %q token %d, want %s, tj-1, a token above %d", n.ID, n.ExternalID, n.Lease.Token, j.ID, old)
	}
	got := s.get(t, j.ID)
	checkPath(t, got)
	if lines, _ := s.ReadLogs(c, j.ID, 0, 0, 0); len(lines) != 0 {
		t.Fatalf("logs: got %d lines, want none from the released lease", len(lines))
	}
}

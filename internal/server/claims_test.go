package server_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/server"
	"github.com/slipway-ml/slipway/internal/store"
)

func TestClaimManyTakesUpToMax(t *testing.T) {
	t.Parallel()
	c := setup(t, server.Config{})
	ctx := context.Background()
	mustQueue(t, c, "q", job.LocalProcess)
	enqueued := map[string]bool{}
	for range 5 {
		j, err := c.Enqueue(ctx, shellJob("q"))
		if err != nil {
			t.Fatal(err)
		}
		enqueued[j.ID] = true
	}
	got, err := c.ClaimMany(ctx, api.Claim{Agent: "a1", Queues: []string{"q"}, Max: 3})
	if err != nil {
		t.Fatalf("claiming 3: %v", err)
	}
	if len(got) != 3 {
		t.Fatalf("claiming 3 of 5: got %d jobs, want 3", len(got))
	}
	more, err := c.ClaimMany(ctx, api.Claim{Agent: "a1", Queues: []string{"q"}, Max: 10})
	if err != nil {
		t.Fatalf("claiming 10: %v", err)
	}
	if len(more) != 2 {
		t.Fatalf("claiming 10 of the 2 left: got %d jobs, want 2", len(more))
	}
	for _, cl := range append(got, more...) {
		if !enqueued[cl.Job.ID] {
			t.Fatalf("claimed %s: not enqueued, or claimed twice", cl.Job.ID)
		}
		delete(enqueued, cl.Job.ID)
		if cl.Job.State != job.Claimed || cl.Job.Lease == nil || cl.Job.Lease.Agent != "a1" || cl.Queue.Resource != job.LocalProcess {
			t.Fatalf("claimed %s: got state %s, lease %+v, resource %s; want claimed, held by a1, local-process",
				cl.Job.ID, cl.Job.State, cl.Job.Lease, cl.Queue.Resource)
		}
		// Each job has a lease of its own: it moves on its own token.
		if _, err := c.Transition(ctx, cl.Job.ID, api.Transition{Token: cl.Job.Lease.Token, To: job.Finished, Reason: "done"}); err != nil {
			t.Fatalf("finishing %s: %v", cl.Job.ID, err)
		}
	}
	_, err = c.ClaimMany(ctx, api.Claim{Agent: "a1", Queues: []string{"q"}, Max: 2, Wait: 20 * time.Millisecond})
	if !errors.Is(err, job.ErrNoJob) {
		t.Fatalf("claiming from an empty queue: got %v, want %v", err, job.ErrNoJob)
	}
}

func TestClaimManyWaitsForWork(t *testing.T) {
	t.Parallel()
	srv, c := setupServer(t, server.Config{})
	ctx := context.Background()
	mustQueue(t, c, "q", job.LocalProcess)
	type answer struct {
		cs  []api.Claimed
		err error
	}
	got := make(chan answer, 1)
	go func() {
		cs, err := c.ClaimMany(ctx, api.Claim{Agent: "a1", Queues: []string{"q"}, Max: 4, Wait: 10 * time.Second})
		got <- answer{cs, err}
	}()
	for srv.ClaimsWaiting() == 0 { // the claim waits first, then work comes
		select {
		case a := <-got:
			t.Fatalf("claim answered before any work came: %d jobs, %v", len(a.cs), a.err)
		case <-time.After(time.Millisecond):
		}
	}
	j, err := c.Enqueue(ctx, shellJob("q"))
	if err != nil {
		t.Fatal(err)
	}
	a := <-got
	if a.err != nil {
		t.Fatalf("claim: %v", a.err)
	}
	if len(a.cs) != 1 || a.cs[0].Job.ID != j.ID {
		t.Fatalf("claimed %d jobs, want just %s", len(a.cs), j.ID)
	}
}

func TestClaimManyRefusesAMaxOutOfRange(t *testing.T) {
	t.Parallel()
	c := setup(t, server.Config{})
	mustQueue(t, c, "q", job.LocalProcess)
	for _, n := range []int{-1, api.MaxClaim + 1} {
		_, err := c.ClaimMany(context.Background(), api.Claim{Agent: "a1", Queues: []string{"q"}, Max: n})
		if !errors.Is(err, job.ErrInvalid) {
			t.Errorf("claiming %d jobs: got %v, want %v", n, err, job.ErrInvalid)
		}
	}
}

// TestReportsOfClaimedJobsAreRedacted checks that the secret values a
// claim hands out are hidden in what its agent reports, for every job of a
// claim of several.
func TestReportsOfClaimedJobsAreRedacted(t *testing.T) {
	t.Parallel()
	c := setup(t, server.Config{SecretsKey: make([]byte, 32)})
	ctx := context.Background()
	mustQueue(t, c, "q", job.LocalProcess)
	for i := range 2 {
		e := shellJob("q")
		e.Secrets = map[string]string{"TOKEN": fmt.Sprintf("hunter%d-value", i)}
		if _, err := c.Enqueue(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	cs, err := c.ClaimMany(ctx, api.Claim{Agent: "a1", Queues: []string{"q"}, Max: 2})
	if err != nil || len(cs) != 2 {
		t.Fatalf("claiming 2: got %d jobs, %v; want 2", len(cs), err)
	}
	for _, cl := range cs {
		secret := cl.Secrets["TOKEN"]
		if secret == "" {
			t.Fatalf("claim of %s: got secrets %v, want TOKEN's value", cl.Job.ID, cl.Secrets)
		}
		j, err := c.Transition(ctx, cl.Job.ID, api.Transition{Token: cl.Job.Lease.Token, To: job.Failed, Reason: "saw " + secret})
		if err != nil {
			t.Fatal(err)
		}
		if want := "saw [redacted]"; j.Reason != want {
			t.Fatalf("reason of %s: got %q, want %q", cl.Job.ID, j.Reason, want)
		}
	}
}

// failingQueue is a store whose GetQueue of one queue fails once failing
// is set: a claim then cannot ready that queue's jobs.
type failingQueue struct {
	store.Store
	queue   string
	failing atomic.Bool
}

func (f *failingQueue) GetQueue(ctx context.Context, name string) (job.Queue, error) {
	if name == f.queue && f.failing.Load() {
		return job.Queue{}, errors.New("reading the queue: disk on fire")
	}
	return f.Store.GetQueue(ctx, name)
}

// TestClaimManyGivesBackWhatItCannotHandOut checks that a claim that took
// several jobs but cannot ready one of them answers those it readied and
// gives that one back to its queue at once, with its attempt, rather than
// leaving it held by nobody until its lease expires.
func TestClaimManyGivesBackWhatItCannotHandOut(t *testing.T) {
	t.Parallel()
	f := &failingQueue{queue: "bad"}
	_, c := setupWrapped(t, server.Config{LeaseTTL: time.Hour}, func(st store.Store) store.Store { f.Store = st; return f })
	ctx := context.Background()
	mustQueue(t, c, "good", job.LocalProcess)
	mustQueue(t, c, "bad", job.LocalProcess)
	good, err := c.Enqueue(ctx, shellJob("good"))
	if err != nil {
		t.Fatal(err)
	}
	bad, err := c.Enqueue(ctx, shellJob("bad"))
	if err != nil {
		t.Fatal(err)
	}
	f.failing.Store(true)
	cs, err := c.ClaimMany(ctx, api.Claim{Agent: "a1", Queues: []string{"good", "bad"}, Max: 2})
	if err != nil {
		t.Fatalf("claiming 2: %v", err)
	}
	if len(cs) != 1 || cs[0].Job.ID != good.ID {
		t.Fatalf("claimed %d jobs, want just %s, the one the server could ready", len(cs), good.ID)
	}
	j, err := c.Job(ctx, bad.ID)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != job.Queued || j.Lease != nil || j.Attempt != bad.Attempt {
		t.Fatalf("job the claim could not ready: got %s, lease %+v, attempt %d; want queued, no lease, attempt %d",
			j.State, j.Lease, j.Attempt, bad.Attempt)
	}

	// With nothing readied, the claim fails, and still gives the job back.
	_, err = c.ClaimMany(ctx, api.Claim{Agent: "a1", Queues: []string{"bad"}, Max: 2})
	if err == nil {
		t.Fatal("claiming only jobs the server cannot ready: got no error, want one")
	}
	if j, err := c.Job(ctx, bad.ID); err != nil || j.State != job.Queued || j.Lease != nil {
		t.Fatalf("job after a failed claim: got %s, lease %+v, %v; want queued, no lease", j.State, j.Lease, err)
	}
}

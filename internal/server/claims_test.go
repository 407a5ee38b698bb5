package server_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/server"
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
	c := setup(t, server.Config{})
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
	time.Sleep(50 * time.Millisecond) // let the claim start waiting first
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

package server_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/client"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/server"
)

func TestRenewLeasesAnswersEachLease(t *testing.T) {
	t.Parallel()
	c := setup(t, server.Config{LeaseTTL: time.Minute})
	ctx := context.Background()
	mustQueue(t, c, "q", job.LocalProcess)
	for range 3 {
		if _, err := c.Enqueue(ctx, shellJob("q")); err != nil {
			t.Fatal(err)
		}
	}
	cs, err := c.ClaimMany(ctx, api.Claim{Agent: "a1", Queues: []string{"q"}, Max: 3})
	if err != nil || len(cs) != 3 {
		t.Fatalf("claiming 3: got %d, %v; want 3", len(cs), err)
	}
	held, ended, canceled := cs[0].Job, cs[1].Job, cs[2].Job
	if _, err := c.Transition(ctx, ended.ID, api.Transition{Token: ended.Lease.Token, To: job.Finished, Reason: "done"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Cancel(ctx, canceled.ID); err != nil {
		t.Fatal(err)
	}
	refs := []api.LeaseRef{
		{Job: held.ID, Token: held.Lease.Token},
		{Job: ended.ID, Token: ended.Lease.Token},
		{Job: canceled.ID, Token: canceled.Lease.Token},
		{Job: held.ID, Token: held.Lease.Token + 1},
		{Job: "j-missing", Token: 1},
	}
	res, err := c.RenewLeases(ctx, "a1", refs)
	if err != nil {
		t.Fatalf("renewing: %v", err)
	}
	for i, want := range []error{nil, job.ErrLeaseLost, nil, job.ErrLeaseLost, job.ErrNotFound} {
		if res[i].Job != refs[i].Job {
			t.Fatalf("result %d: got job %s, want %s: results in the order asked", i, res[i].Job, refs[i].Job)
		}
		err := client.RenewError(res[i])
		if want == nil && err != nil || want != nil && !errors.Is(err, want) {
			t.Errorf("renewing %s with token %d: got error %v, want %v", refs[i].Job, refs[i].Token, err, want)
		}
	}
	if !res[0].ExpiresAt.After(held.Lease.ExpiresAt) {
		t.Errorf("renewed lease: got expiry %v, want after the claim's %v", res[0].ExpiresAt, held.Lease.ExpiresAt)
	}
	if res[0].CancelRequested || !res[2].CancelRequested {
		t.Errorf("cancel requested: got %v for the held job and %v for the canceled one, want false and true",
			res[0].CancelRequested, res[2].CancelRequested)
	}
	got, err := c.Job(ctx, held.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Lease == nil || !got.Lease.ExpiresAt.Equal(res[0].ExpiresAt) {
		t.Errorf("stored lease: got %+v, want expiring at %v", got.Lease, res[0].ExpiresAt)
	}
}

func TestRenewLeasesRefusesTooMany(t *testing.T) {
	t.Parallel()
	c := setup(t, server.Config{})
	_, err := c.RenewLeases(context.Background(), "a1", make([]api.LeaseRef, api.MaxRenew+1))
	if !errors.Is(err, job.ErrInvalid) {
		t.Fatalf("renewing %d leases: got %v, want %v", api.MaxRenew+1, err, job.ErrInvalid)
	}
}

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
	// A missing job is answered as a lost lease: the answer does not say
	// which jobs exist.
	for i, want := range []error{nil, job.ErrLeaseLost, nil, job.ErrLeaseLost, job.ErrLeaseLost} {
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

// TestRenewLeasesOnlyTheAgentsOwn checks that an agent renews only the
// leases it holds: with the right token, another agent's lease is refused
// as lost, unchanged, and without telling whether a cancel was asked.
func TestRenewLeasesOnlyTheAgentsOwn(t *testing.T) {
	t.Parallel()
	c := setup(t, server.Config{LeaseTTL: time.Minute})
	ctx := context.Background()
	mustQueue(t, c, "q", job.LocalProcess)
	if _, err := c.Enqueue(ctx, shellJob("q")); err != nil {
		t.Fatal(err)
	}
	cl, err := c.Claim(ctx, api.Claim{Agent: "a1", Queues: []string{"q"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Cancel(ctx, cl.Job.ID); err != nil {
		t.Fatal(err)
	}
	res, err := c.RenewLeases(ctx, "a2", []api.LeaseRef{{Job: cl.Job.ID, Token: cl.Job.Lease.Token}})
	if err != nil {
		t.Fatalf("renewing: %v", err)
	}
	if err := client.RenewError(res[0]); !errors.Is(err, job.ErrLeaseLost) {
		t.Fatalf("a2 renewing a1's lease: got %v, want %v", err, job.ErrLeaseLost)
	}
	if res[0].CancelRequested || !res[0].ExpiresAt.IsZero() {
		t.Fatalf("a2 renewing a1's lease: got cancel requested %v, expiry %v; want neither", res[0].CancelRequested, res[0].ExpiresAt)
	}
	got, err := c.Job(ctx, cl.Job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Lease == nil || !got.Lease.ExpiresAt.Equal(cl.Job.Lease.ExpiresAt) {
		t.Fatalf("a1's lease after a2's renewal: got %+v, want unchanged, expiring at %v", got.Lease, cl.Job.Lease.ExpiresAt)
	}
	res, err = c.RenewLeases(ctx, "a1", []api.LeaseRef{{Job: cl.Job.ID, Token: cl.Job.Lease.Token}})
	if err != nil || client.RenewError(res[0]) != nil {
		t.Fatalf("a1 renewing its lease: got %v, %+v; want renewed", err, res)
	}
}

// TestRenewLeasesKeepsToTheTokensQueues checks that a token scoped to some
// queues renews no lease in another, as POST /v1/jobs/{id}/renew refuses.
func TestRenewLeasesKeepsToTheTokensQueues(t *testing.T) {
	t.Parallel()
	url, admin, _ := authSetup(t)
	ctx := context.Background()
	mustQueue(t, admin, "q1", job.LocalProcess)
	mustQueue(t, admin, "q2", job.LocalProcess)
	if _, err := admin.Enqueue(ctx, shellJob("q2")); err != nil {
		t.Fatal(err)
	}
	wide := tokenClient(t, url, admin, job.RoleAgent)
	other, err := wide.Claim(ctx, api.Claim{Agent: "a", Queues: []string{"q2"}})
	if err != nil {
		t.Fatal(err)
	}
	scoped := tokenClient(t, url, admin, job.RoleAgent, "q1")
	_, err = scoped.Renew(ctx, other.Job.ID, other.Job.Lease.Token)
	wantErrIs(t, "q1 token renewing a q2 job alone", err, job.ErrForbidden)
	refs := []api.LeaseRef{{Job: other.Job.ID, Token: other.Job.Lease.Token}, {Job: "j-missing", Token: 1}}
	res, err := scoped.RenewLeases(ctx, "a", refs)
	if err != nil {
		t.Fatalf("renewing: %v", err)
	}
	for i, r := range res {
		if err := client.RenewError(r); !errors.Is(err, job.ErrForbidden) {
			t.Errorf("q1 token renewing %s in a batch: got %v, want %v", refs[i].Job, err, job.ErrForbidden)
		}
		if r.CancelRequested || !r.ExpiresAt.IsZero() {
			t.Errorf("q1 token renewing %s in a batch: got expiry %v, want none", refs[i].Job, r.ExpiresAt)
		}
	}
	got, err := admin.Job(ctx, other.Job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Lease == nil || !got.Lease.ExpiresAt.Equal(other.Job.Lease.ExpiresAt) {
		t.Fatalf("q2 lease after the refused renewal: got %+v, want unchanged, expiring at %v", got.Lease, other.Job.Lease.ExpiresAt)
	}
}

package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/job"
)

// TestAuthLeaseHolder checks that, with tokens, a lease is bound to the API
// token that claimed it: another agent token allowed on the same queue,
// holding the fencing token, may not renew, move, release or log under it;
// the claiming token and an admin one may.
func TestAuthLeaseHolder(t *testing.T) {
	t.Parallel()
	url, admin, _ := authSetup(t)
	ctx := context.Background()
	mustQueue(t, admin, "q1", job.LocalProcess)
	spec := job.Spec{Entrypoint: []string{"true"}}
	enq, err := admin.Enqueue(ctx, api.Enqueue{Queue: "q1", Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	a := tokenClient(t, url, admin, job.RoleAgent, "q1")
	b := tokenClient(t, url, admin, job.RoleAgent, "q1")
	aTok, err := a.Self(ctx)
	if err != nil {
		t.Fatal(err)
	}

	got, err := a.Claim(ctx, api.Claim{Agent: "agent-a", Queues: []string{"q1"}, Wait: time.Second})
	if err != nil {
		t.Fatalf("agent A claiming: %v", err)
	}
	if got.Job.ID != enq.ID || got.Job.Lease == nil || got.Job.Lease.TokenID != aTok.ID {
		t.Fatalf("claimed %s with lease %+v; want %s held with token %s", got.Job.ID, got.Job.Lease, enq.ID, aTok.ID)
	}
	id, lease := got.Job.ID, got.Job.Lease.Token

	// B, with A's fencing token, is refused every update: lease_lost,
	// naming why.
	_, err = b.Renew(ctx, id, lease)
	wantErrIs(t, "B renewing A's lease", err, job.ErrLeaseLost)
	if err != nil && !strings.Contains(err.Error(), "another API token") {
		t.Errorf("B renewing A's lease: got %q, want it to say another API token claimed it", err)
	}
	_, err = b.Transition(ctx, id, api.Transition{Token: lease, To: job.Building})
	wantErrIs(t, "B moving A's job", err, job.ErrLeaseLost)
	_, err = b.Release(ctx, id, lease, "mine now")
	wantErrIs(t, "B releasing A's job", err, job.ErrLeaseLost)
	err = b.AppendLogs(ctx, id, lease, []job.LogLine{{Stream: "stdout", Text: "forged"}})
	wantErrIs(t, "B appending logs to A's job", err, job.ErrLeaseLost)
	// The batch renew under A's self-declared agent id too.
	rs, err := b.RenewLeases(ctx, "agent-a", []api.LeaseRef{{Job: id, Token: lease}})
	if err != nil || len(rs) != 1 || rs[0].Error == nil || rs[0].Error.Code != "lease_lost" {
		t.Errorf("B batch-renewing A's lease as agent-a: got %+v, %v; want one lease_lost", rs, err)
	}
	if j, err := admin.Job(ctx, id); err != nil || j.State != job.Claimed || j.Lease == nil || j.Lease.TokenID != aTok.ID {
		t.Fatalf("after B's attempts: got %+v, %v; want claimed, still A's", j, err)
	}
	if logs, err := admin.Logs(ctx, id, 0, 0, 0); err != nil || len(logs.Lines) != 0 {
		t.Errorf("logs after B's refused append: got %+v, %v; want none", logs, err)
	}

	// A's own updates succeed.
	if _, err := a.Renew(ctx, id, lease); err != nil {
		t.Errorf("A renewing its lease: %v", err)
	}
	rs, err = a.RenewLeases(ctx, "agent-a", []api.LeaseRef{{Job: id, Token: lease}})
	if err != nil || len(rs) != 1 || rs[0].Error != nil {
		t.Errorf("A batch-renewing its lease: got %+v, %v; want it renewed", rs, err)
	}
	if err := a.AppendLogs(ctx, id, lease, []job.LogLine{{Stream: "stdout", Text: "epoch 1"}}); err != nil {
		t.Errorf("A appending logs: %v", err)
	}
	if _, err := a.Transition(ctx, id, api.Transition{Token: lease, To: job.Building}); err != nil {
		t.Fatalf("A moving its job: %v", err)
	}

	// An admin token may still act under any lease. (Its release moves
	// the job; it does not move it past building first, since a
	// local-process job released while submitting is failed as lost on
	// its next claim.)
	if _, err := admin.Renew(ctx, id, lease); err != nil {
		t.Errorf("admin renewing A's lease: %v", err)
	}
	if err := admin.AppendLogs(ctx, id, lease, []job.LogLine{{Stream: "stdout", Text: "from admin"}}); err != nil {
		t.Errorf("admin appending logs: %v", err)
	}
	if j, err := admin.Release(ctx, id, lease, "handed over by the admin"); err != nil || j.State != job.Queued || j.Lease != nil {
		t.Fatalf("admin releasing A's job: got %+v, %v; want queued, no lease", j, err)
	}

	// B claims it next: now the lease is B's, and A is refused.
	got, err = b.Claim(ctx, api.Claim{Agent: "agent-b", Queues: []string{"q1"}, Wait: time.Second})
	if err != nil || got.Job.ID != id {
		t.Fatalf("agent B claiming the released job: got %s, %v", got.Job.ID, err)
	}
	_, err = a.Release(ctx, id, got.Job.Lease.Token, "")
	wantErrIs(t, "A releasing B's job", err, job.ErrLeaseLost)
	if _, err := b.Release(ctx, id, got.Job.Lease.Token, ""); err != nil {
		t.Errorf("B releasing its job: %v", err)
	}
}

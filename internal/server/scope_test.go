package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/client"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/server"
	"github.com/slipway-ml/slipway/internal/store"
)

// jobReads is a store that counts its GetJob calls.
type jobReads struct {
	store.Store
	n atomic.Int64
}

func (s *jobReads) GetJob(ctx context.Context, id string) (job.Job, error) {
	s.n.Add(1)
	return s.Store.GetJob(ctx, id)
}

// readsServer is an authServer whose store counts its job reads, with
// queues q1 and q2.
func readsServer(t *testing.T) (reads *jobReads, url string, admin *client.Client) {
	t.Helper()
	reads = &jobReads{}
	_, url, admin, _ = authServer(t, server.Config{}, func(st store.Store) store.Store { reads.Store = st; return reads })
	mustQueue(t, admin, "q1", job.LocalProcess)
	mustQueue(t, admin, "q2", job.LocalProcess)
	return reads, url, admin
}

// TestScopedTokenMovesAndRenewsWithoutReads checks that a token scoped to
// queues moves and renews, in batches, without the server reading each
// job to check its queue (the store checks it in its fenced write), and
// that a job of another queue and a missing one are answered alike:
// forbidden, "token <id> may not <verb> job <id>", so that the answer does
// not say which jobs exist; the other moves and renewals land.
func TestScopedTokenMovesAndRenewsWithoutReads(t *testing.T) {
	t.Parallel()
	reads, url, admin := readsServer(t)
	ctx := context.Background()
	for _, q := range []string{"q1", "q1", "q2"} {
		if _, err := admin.Enqueue(ctx, shellJob(q)); err != nil {
			t.Fatal(err)
		}
	}
	scoped := tokenClient(t, url, admin, job.RoleAgent, "q1")
	self, err := scoped.Self(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := scoped.ClaimMany(ctx, api.Claim{Agent: "a", Queues: []string{"q1"}, Max: 2})
	if err != nil || len(cs) != 2 {
		t.Fatalf("q1 token claiming 2 jobs: got %d, %v", len(cs), err)
	}
	wide := tokenClient(t, url, admin, job.RoleAgent)
	other, err := wide.Claim(ctx, api.Claim{Agent: "a", Queues: []string{"q2"}})
	if err != nil {
		t.Fatal(err)
	}
	mine0, mine1 := cs[0].Job, cs[1].Job

	// The jobs claimed here need no read to be redacted either: none at all.
	reads.n.Store(0)
	ms, err := scoped.Transitions(ctx, []api.JobTransition{
		{Job: mine0.ID, Transition: api.Transition{Token: mine0.Lease.Token, To: job.Building}},
		{Job: other.Job.ID, Transition: api.Transition{Token: other.Job.Lease.Token, To: job.Failed, Reason: "not my queue"}},
		{Job: mine1.ID, Transition: api.Transition{Token: mine1.Lease.Token, To: job.Building}},
	})
	if err != nil {
		t.Fatalf("moving a batch: %v", err)
	}
	rs, err := scoped.RenewLeases(ctx, "a", []api.LeaseRef{
		{Job: mine0.ID, Token: mine0.Lease.Token}, {Job: other.Job.ID, Token: other.Job.Lease.Token}, {Job: mine1.ID, Token: mine1.Lease.Token}})
	if err != nil {
		t.Fatalf("renewing a batch: %v", err)
	}
	if n := reads.n.Load(); n != 0 {
		t.Errorf("reads of a job while moving and renewing 3 jobs with a scoped token: got %d, want 0", n)
	}
	wantRefused := func(what string, err error, verb, id string) {
		t.Helper()
		msg := fmt.Sprintf("token %s may not %s job %s", self.ID, verb, id)
		if !errors.Is(err, job.ErrForbidden) || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: got %v, want forbidden: %q", what, err, msg)
		}
	}
	for i, m := range ms {
		if i == 1 {
			wantRefused("moving a q2 job", client.MoveError(m), "move", other.Job.ID)
		} else if err := client.MoveError(m); err != nil || m.State != job.Building {
			t.Errorf("move %d: got %s, %v; want building", i, m.State, err)
		}
	}
	for i, r := range rs {
		if i == 1 {
			wantRefused("renewing a q2 lease", client.RenewError(r), "renew", other.Job.ID)
		} else if err := client.RenewError(r); err != nil || r.ExpiresAt.IsZero() {
			t.Errorf("renewal %d: got expiry %v, %v; want renewed", i, r.ExpiresAt, err)
		}
	}

	// A missing job is answered as one of another queue.
	ms, err = scoped.Transitions(ctx, []api.JobTransition{{Job: "j-missing", Transition: api.Transition{Token: 1, To: job.Failed}}})
	if err != nil || len(ms) != 1 {
		t.Fatalf("moving a missing job: got %d answers, %v", len(ms), err)
	}
	wantRefused("moving a missing job", client.MoveError(ms[0]), "move", "j-missing")
	rs, err = scoped.RenewLeases(ctx, "a", []api.LeaseRef{{Job: "j-missing", Token: 1}})
	if err != nil || len(rs) != 1 {
		t.Fatalf("renewing a missing job: got %d answers, %v", len(rs), err)
	}
	wantRefused("renewing a missing job", client.RenewError(rs[0]), "renew", "j-missing")

	// An unscoped token is answered as before: a missing job's lease is lost.
	rs, err = wide.RenewLeases(ctx, "a", []api.LeaseRef{{Job: "j-missing", Token: 1}})
	if err != nil || len(rs) != 1 {
		t.Fatalf("unscoped, renewing a missing job: got %d answers, %v", len(rs), err)
	}
	wantErrIs(t, "unscoped, renewing a missing job", client.RenewError(rs[0]), job.ErrLeaseLost)

	if got, err := admin.Job(ctx, other.Job.ID); err != nil || got.State != job.Claimed || got.Lease == nil ||
		!got.Lease.ExpiresAt.Equal(other.Job.Lease.ExpiresAt) {
		t.Errorf("q2 job after the refused moves and renewals: got %+v, %v; want claimed, lease unchanged", got, err)
	}
}

// TestScopedTokenOpensNoSecretsOfOtherQueues checks that a move a token
// scoped to other queues reports for a job is refused without the server
// opening that job's secrets to redact the report: the server holds the
// values of no job a caller may not act on.
func TestScopedTokenOpensNoSecretsOfOtherQueues(t *testing.T) {
	t.Parallel()
	srv, url, admin, _ := authServer(t, server.Config{SecretsKey: bytes.Repeat([]byte{7}, 32)}, nil)
	ctx := context.Background()
	mustQueue(t, admin, "q1", job.LocalProcess)
	mustQueue(t, admin, "q2", job.LocalProcess)
	enqueue := func(q string) job.Job {
		t.Helper()
		e := shellJob(q)
		e.Secrets = map[string]string{"DB_PASSWORD": "hunter2-" + q}
		j, err := admin.Enqueue(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	mine, theirs := enqueue("q1"), enqueue("q2")
	scoped := tokenClient(t, url, admin, job.RoleAgent, "q1")
	ms, err := scoped.Transitions(ctx, []api.JobTransition{
		{Job: theirs.ID, Transition: api.Transition{Token: 1, To: job.Failed, Reason: "hunter2-q2"}},
		{Job: mine.ID, Transition: api.Transition{Token: 1, To: job.Failed, Reason: "hunter2-q1"}},
	})
	if err != nil || len(ms) != 2 {
		t.Fatalf("moving two unclaimed jobs: got %d answers, %v", len(ms), err)
	}
	wantErrIs(t, "moving a q2 job", client.MoveError(ms[0]), job.ErrForbidden)
	wantErrIs(t, "moving an unclaimed q1 job", client.MoveError(ms[1]), job.ErrLeaseLost)
	if srv.SecretsHeld(theirs.ID) {
		t.Errorf("after a q1 token's refused move of q2 job %s, the server holds its secrets; want them left sealed", theirs.ID)
	}
	// A job of its own queue is redacted as before: its secrets are opened.
	if !srv.SecretsHeld(mine.ID) {
		t.Errorf("after a q1 token's move of q1 job %s, the server holds no secrets for it; want them opened to redact the report", mine.ID)
	}
}

// TestScopedTokenSeesNoOtherJobs checks that a token scoped to queues gets
// the same answer for a job of another queue as for a missing one on the
// routes of one job, as the batch routes answer: forbidden, "token <id>
// may not act on job <id>", naming no queue; its own queue's jobs it reads.
func TestScopedTokenSeesNoOtherJobs(t *testing.T) {
	t.Parallel()
	_, url, admin, _ := authServer(t, server.Config{}, nil)
	ctx := context.Background()
	mustQueue(t, admin, "q1", job.LocalProcess)
	// A queue name no job or token id can hold (they have no hyphen after
	// their prefix): the answer must not name it.
	mustQueue(t, admin, "other-queue", job.LocalProcess)
	mine, err := admin.Enqueue(ctx, shellJob("q1"))
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := admin.Enqueue(ctx, shellJob("other-queue"))
	if err != nil {
		t.Fatal(err)
	}
	scoped := tokenClient(t, url, admin, job.RoleSubmit, "q1")
	self, err := scoped.Self(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := scoped.Job(ctx, mine.ID); err != nil || got.ID != mine.ID {
		t.Errorf("a q1 token reading its q1 job: got %q, %v", got.ID, err)
	}
	for _, id := range []string{theirs.ID, "j-missing"} {
		_, err := scoped.Job(ctx, id)
		msg := fmt.Sprintf("token %s may not act on job %s", self.ID, id)
		if !errors.Is(err, job.ErrForbidden) || !strings.Contains(err.Error(), msg) || strings.Contains(err.Error(), "other-queue") {
			t.Errorf("a q1 token reading job %s: got %v, want forbidden: %q, naming no queue", id, err, msg)
		}
	}
}

// TestScopedTokenActsUnderLeaseWithoutReads checks that the routes of one
// job that act under its lease (renew, transition, logs, release) read no
// job for a scoped token's own jobs either: the store checks the queue in
// its write. Another queue's job is refused there, as forbidden.
func TestScopedTokenActsUnderLeaseWithoutReads(t *testing.T) {
	t.Parallel()
	reads, url, admin := readsServer(t)
	ctx := context.Background()
	for _, q := range []string{"q1", "q2"} {
		if _, err := admin.Enqueue(ctx, shellJob(q)); err != nil {
			t.Fatal(err)
		}
	}
	scoped := tokenClient(t, url, admin, job.RoleAgent, "q1")
	mine, err := scoped.Claim(ctx, api.Claim{Agent: "a", Queues: []string{"q1"}})
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := tokenClient(t, url, admin, job.RoleAgent).Claim(ctx, api.Claim{Agent: "a", Queues: []string{"q2"}})
	if err != nil {
		t.Fatal(err)
	}
	id, lease := mine.Job.ID, mine.Job.Lease.Token
	reads.n.Store(0)
	if _, err := scoped.Renew(ctx, id, lease); err != nil {
		t.Errorf("renewing its q1 job: %v", err)
	}
	if _, err := scoped.Transition(ctx, id, api.Transition{Token: lease, To: job.Submitting}); err != nil {
		t.Errorf("moving its q1 job: %v", err)
	}
	if err := scoped.AppendLogs(ctx, id, lease, []job.LogLine{{Stream: "stdout", Text: "hi"}}); err != nil {
		t.Errorf("logging to its q1 job: %v", err)
	}
	if _, err := scoped.Release(ctx, id, lease, "handed back"); err != nil {
		t.Errorf("releasing its q1 job: %v", err)
	}
	if n := reads.n.Load(); n != 0 {
		t.Errorf("reads of a job while a scoped token renews, moves, logs to and releases its own: got %d, want 0", n)
	}
	other, otherLease := theirs.Job.ID, theirs.Job.Lease.Token
	_, err = scoped.Transition(ctx, other, api.Transition{Token: otherLease, To: job.Failed})
	wantErrIs(t, "a q1 token moving a q2 job", err, job.ErrForbidden)
	_, err = scoped.Renew(ctx, other, otherLease)
	wantErrIs(t, "a q1 token renewing a q2 job", err, job.ErrForbidden)
	err = scoped.AppendLogs(ctx, other, otherLease, []job.LogLine{{Stream: "stdout", Text: "hi"}})
	wantErrIs(t, "a q1 token logging to a q2 job", err, job.ErrForbidden)
	_, err = scoped.Release(ctx, other, otherLease, "not mine")
	wantErrIs(t, "a q1 token releasing a q2 job", err, job.ErrForbidden)
	if got, err := admin.Job(ctx, other); err != nil || got.State != job.Claimed || got.Lease == nil || got.Lease.Token != otherLease {
		t.Errorf("q2 job after the refused calls: got %+v, %v; want claimed under its lease", got, err)
	}
}

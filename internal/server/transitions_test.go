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

// TestTransitionsRefuseEachMoveOnItsOwn checks that POST /v1/transitions
// vets every move as POST /v1/jobs/{id}/transition would: a stale fencing
// token, a lease claimed with another agent token, a job of a queue the
// token may not act on and an unknown state are each refused in their
// place, while the other moves of the batch land with their events.
func TestTransitionsRefuseEachMoveOnItsOwn(t *testing.T) {
	t.Parallel()
	url, admin, _ := authSetup(t)
	ctx := context.Background()
	mustQueue(t, admin, "q1", job.LocalProcess)
	mustQueue(t, admin, "q2", job.LocalProcess)
	a := tokenClient(t, url, admin, job.RoleAgent, "q1")
	b := tokenClient(t, url, admin, job.RoleAgent, "q1")
	enqueue := func(q string) {
		t.Helper()
		if _, err := admin.Enqueue(ctx, shellJob(q)); err != nil {
			t.Fatal(err)
		}
	}
	claim := func(c *client.Client, agent, q string, n int) []job.Job {
		t.Helper()
		cs, err := c.ClaimMany(ctx, api.Claim{Agent: agent, Queues: []string{q}, Max: n})
		if err != nil || len(cs) != n {
			t.Fatalf("%s claiming %d jobs of %s: got %d, %v", agent, n, q, len(cs), err)
		}
		js := make([]job.Job, n)
		for i, c := range cs {
			js[i] = c.Job
		}
		return js
	}
	for range 3 {
		enqueue("q1")
	}
	mine := claim(a, "agent-a", "q1", 3)
	enqueue("q1")
	theirs := claim(b, "agent-b", "q1", 1)[0]
	enqueue("q2")
	other := claim(admin, "agent-admin", "q2", 1)[0]

	ts := []api.JobTransition{
		{Job: mine[0].ID, Transition: api.Transition{Token: mine[0].Lease.Token, To: job.Submitting, Reason: "submitting"}},
		{Job: mine[1].ID, Transition: api.Transition{Token: mine[1].Lease.Token + 1, To: job.Submitting, Reason: "stale"}},
		{Job: theirs.ID, Transition: api.Transition{Token: theirs.Lease.Token, To: job.Failed, Reason: "not mine"}},
		{Job: other.ID, Transition: api.Transition{Token: other.Lease.Token, To: job.Failed, Reason: "not my queue"}},
		{Job: "j-missing", Transition: api.Transition{Token: 1, To: job.Failed, Reason: "no such job"}},
		{Job: mine[2].ID, Transition: api.Transition{Token: mine[2].Lease.Token, To: "bogus"}},
		{Job: mine[2].ID, Transition: api.Transition{Token: mine[2].Lease.Token, To: job.Finished, Reason: "done", Outputs: map[string]string{"loss": "0.1"}}},
	}
	ms, err := a.Transitions(ctx, ts)
	if err != nil {
		t.Fatalf("moving a batch: %v", err)
	}
	want := []error{nil, job.ErrLeaseLost, job.ErrLeaseLost, job.ErrForbidden, job.ErrForbidden, job.ErrInvalid, nil}
	if len(ms) != len(want) {
		t.Fatalf("moving %d jobs: got %d answers", len(ts), len(ms))
	}
	for i, w := range want {
		err := client.MoveError(ms[i])
		if (w == nil) != (err == nil) || (w != nil && !errors.Is(err, w)) {
			t.Errorf("move %d (%s → %s): got error %v, want %v", i, ts[i].Job, ts[i].To, err, w)
		}
		if w == nil && ms[i].State != ts[i].To {
			t.Errorf("move %d: got state %s, want %s", i, ms[i].State, ts[i].To)
		}
	}

	states := map[string]job.State{mine[0].ID: job.Submitting, mine[1].ID: job.Claimed, mine[2].ID: job.Finished, theirs.ID: job.Claimed, other.ID: job.Claimed}
	for id, st := range states {
		j, err := admin.Job(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if j.State != st {
			t.Errorf("job %s after the batch: got %s, want %s", id, j.State, st)
		}
		if last := j.Events[len(j.Events)-1]; last.To != st {
			t.Errorf("job %s's last event: got → %s, want → %s", id, last.To, st)
		}
	}
	if j, err := admin.Job(ctx, mine[2].ID); err != nil || j.Outputs["loss"] != "0.1" || j.Lease != nil {
		t.Errorf("finished job: got outputs %v, lease %+v, %v; want loss 0.1, released", j.Outputs, j.Lease, err)
	}

	// The route is for agents: a submit token is refused as a whole.
	submit := tokenClient(t, url, admin, job.RoleSubmit, "q1")
	_, err = submit.Transitions(ctx, ts[:1])
	wantErrIs(t, "a submit token moving jobs", err, job.ErrForbidden)
	_, err = a.Transitions(ctx, make([]api.JobTransition, api.MaxTransitions+1))
	wantErrIs(t, "moving too many jobs at once", err, job.ErrInvalid)
}

// TestTransitionsWakeClaims checks that a batch that ends a job wakes a
// claim waiting for a free slot of its queue's max_running, as a single
// move does.
func TestTransitionsWakeClaims(t *testing.T) {
	t.Parallel()
	srv, c := setupServer(t, server.Config{})
	ctx := context.Background()
	one := 1
	if _, err := c.CreateQueue(ctx, api.CreateQueue{Name: "q", Resource: job.LocalProcess, MaxRunning: &one}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := c.Enqueue(ctx, shellJob("q")); err != nil {
			t.Fatal(err)
		}
	}
	first, err := c.Claim(ctx, api.Claim{Agent: "a1", Queues: []string{"q"}})
	if err != nil {
		t.Fatal(err)
	}
	type answer struct {
		cs  []api.Claimed
		err error
	}
	got := make(chan answer, 1)
	go func() {
		cs, err := c.ClaimMany(ctx, api.Claim{Agent: "a2", Queues: []string{"q"}, Max: 2, Wait: 20 * time.Second})
		got <- answer{cs, err}
	}()
	for srv.ClaimsWaiting() == 0 { // the claim waits at the cap first
		select {
		case a := <-got:
			t.Fatalf("claim answered while the queue was at its cap: %d jobs, %v", len(a.cs), a.err)
		case <-time.After(time.Millisecond):
		}
	}
	ms, err := c.Transitions(ctx, []api.JobTransition{{Job: first.Job.ID, Transition: api.Transition{Token: first.Job.Lease.Token, To: job.Finished, Reason: "done"}}})
	if err != nil || client.MoveError(ms[0]) != nil {
		t.Fatalf("finishing the held job: %+v, %v", ms, err)
	}
	a := <-got
	if a.err != nil || len(a.cs) != 1 || a.cs[0].Job.ID == first.Job.ID {
		t.Fatalf("waiting claim after the batch freed a slot: got %d jobs, %v; want the other job", len(a.cs), a.err)
	}
}

package server_test

import (
	"context"
	"errors"
	"testing"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/client"
	"github.com/slipway-ml/slipway/internal/job"
)

// TestTransitionsClaimAfterTheirMoves checks the claim a batch of moves may
// carry: it is answered after the moves land, so that the slot of a queue
// at its max_running that a final move frees goes to it; it takes no more
// than its max, answers no job as an empty list, not an error; and a
// refused claim (too large, or of a queue the token may not claim from) is
// answered on its own while the moves still land.
func TestTransitionsClaimAfterTheirMoves(t *testing.T) {
	t.Parallel()
	url, admin, _ := authSetup(t)
	ctx := context.Background()
	one := 1
	if _, err := admin.CreateQueue(ctx, api.CreateQueue{Name: "q1", Resource: job.LocalProcess, MaxRunning: &one}); err != nil {
		t.Fatal(err)
	}
	mustQueue(t, admin, "q2", job.LocalProcess)
	a := tokenClient(t, url, admin, job.RoleAgent, "q1")
	for range 2 {
		if _, err := admin.Enqueue(ctx, shellJob("q1")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admin.Enqueue(ctx, shellJob("q2")); err != nil {
		t.Fatal(err)
	}
	cs, err := a.ClaimMany(ctx, api.Claim{Agent: "a1", Queues: []string{"q1"}, Max: 2})
	if err != nil || len(cs) != 1 {
		t.Fatalf("claiming at max_running 1: got %d jobs, %v; want 1", len(cs), err)
	}
	first := cs[0].Job
	end := func(j job.Job) api.JobTransition {
		return api.JobTransition{Job: j.ID, Transition: api.Transition{Token: j.Lease.Token, To: job.Finished, Reason: "done"}}
	}

	out, err := a.TransitionsClaim(ctx, api.Transitions{Transitions: []api.JobTransition{end(first)},
		Claim: &api.Claim{Agent: "a1", Queues: []string{"q1"}, Max: 2}})
	if err != nil {
		t.Fatalf("finishing a job and claiming: %v", err)
	}
	if st := out.Moves[0].State; st != job.Finished || out.Moves[0].Error != nil {
		t.Fatalf("the move: got %s, %+v; want finished", st, out.Moves[0].Error)
	}
	if len(out.Claims) != 1 || out.ClaimError != nil {
		t.Fatalf("the claim after the move freed q1's slot: got %d jobs, %+v; want 1", len(out.Claims), out.ClaimError)
	}
	second := out.Claims[0]
	if second.Job.ID == first.ID || second.Job.State != job.Claimed || second.Job.Lease == nil || second.Job.Lease.Agent != "a1" || second.Queue.Name != "q1" {
		t.Fatalf("the job claimed: got %s in %s, %s, lease %+v; want the other job of q1, claimed by a1", second.Job.ID, second.Queue.Name, second.Job.State, second.Job.Lease)
	}

	// Nothing left in q1: no job, and no error.
	submitting := api.JobTransition{Job: second.Job.ID, Transition: api.Transition{Token: second.Job.Lease.Token, To: job.Submitting, Reason: "submitting"}}
	out, err = a.TransitionsClaim(ctx, api.Transitions{Transitions: []api.JobTransition{submitting},
		Claim: &api.Claim{Agent: "a1", Queues: []string{"q1"}, Max: 1}})
	if err != nil || len(out.Claims) != 0 || out.ClaimError != nil || out.Moves[0].State != job.Submitting {
		t.Fatalf("claiming from an empty queue: got %+v, %v; want the move, no job, no error", out, err)
	}

	// Refused claims leave the moves alone: each case moves the job on.
	for _, tc := range []struct {
		what  string
		to    job.State
		claim api.Claim
		want  error
	}{
		{"too many", job.Starting, api.Claim{Agent: "a1", Queues: []string{"q1"}, Max: api.MaxClaim + 1}, job.ErrInvalid},
		{"no agent", job.Running, api.Claim{Queues: []string{"q1"}, Max: 1}, job.ErrInvalid},
		{"another queue than the token's", job.Finished, api.Claim{Agent: "a1", Queues: []string{"q2"}, Max: 1}, job.ErrForbidden},
	} {
		move := api.JobTransition{Job: second.Job.ID, Transition: api.Transition{Token: second.Job.Lease.Token, To: tc.to, Reason: tc.what}}
		out, err := a.TransitionsClaim(ctx, api.Transitions{Transitions: []api.JobTransition{move}, Claim: &tc.claim})
		if err != nil {
			t.Fatalf("%s: the request: %v", tc.what, err)
		}
		if got := client.MoveError(out.Moves[0]); got != nil || out.Moves[0].State != tc.to {
			t.Errorf("%s: the move: got %s, %v; want %s", tc.what, out.Moves[0].State, got, tc.to)
		}
		var ce error
		if out.ClaimError != nil {
			ce = api.ErrOf(out.ClaimError.Code)
		}
		if !errors.Is(ce, tc.want) || len(out.Claims) != 0 {
			t.Errorf("%s: the claim: got %d jobs, error %+v; want %v", tc.what, len(out.Claims), out.ClaimError, tc.want)
		}
	}
	if j, err := admin.Job(ctx, second.Job.ID); err != nil || j.State != job.Finished {
		t.Errorf("the job moved beside refused claims: got %s, %v; want finished", j.State, err)
	}
	if j, err := admin.Job(ctx, first.ID); err != nil || j.State != job.Finished {
		t.Errorf("the job finished: got %s, %v", j.State, err)
	}
}

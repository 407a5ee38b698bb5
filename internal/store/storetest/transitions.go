package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
)

// testTransitions checks that a batch of updates applies each as
// Transition would, in order, each refused on its own (a stale token,
// another API token, a move the lifecycle forbids, a missing job, an
// unknown state) while the others land with their events.
func testTransitions(t *testing.T, s *suite) {
	c := ctx(t)
	s.queue(t, "q")
	for range 5 {
		s.enqueue(t, "q", job.Medium)
	}
	js, err := s.ClaimN(c, store.ClaimRequest{Agent: "agent-a", Queues: []string{"q"}, TTL: ttl, TokenID: "tok-a"}, 5)
	if err != nil || len(js) != 5 {
		t.Fatalf("claiming 5 jobs: got %d, %v", len(js), err)
	}
	tok := func(i int) int64 { return js[i].Lease.Token }
	us := []store.Update{
		{JobID: js[0].ID, Token: tok(0), To: job.Submitting, Reason: "submitting", Holder: store.Holder{TokenID: "tok-a"}},
		{JobID: js[1].ID, Token: tok(1) + 1, To: job.Submitting, Reason: "stale"},
		{JobID: js[2].ID, Token: tok(2), To: job.Claimed, Reason: "backwards"},
		{JobID: js[3].ID, Token: tok(3), To: job.Submitting, Reason: "not mine", Holder: store.Holder{TokenID: "tok-b"}},
		{JobID: "missing", Token: 1, To: job.Submitting},
		// Later updates of one job see the earlier ones.
		{JobID: js[0].ID, Token: tok(0), To: job.Starting, Reason: "started", ExternalID: "run-0", Holder: store.Holder{TokenID: "tok-a"}},
		{JobID: js[4].ID, Token: tok(4), To: "bogus"},
		{JobID: js[4].ID, Token: tok(4), To: job.Finished, Reason: "done", Outputs: map[string]string{"loss": "0.1"}, Actor: "agent-a"},
	}
	ms, err := s.Transitions(c, us)
	if err != nil {
		t.Fatalf("Transitions: %v", err)
	}
	if len(ms) != len(us) {
		t.Fatalf("Transitions of %d updates: got %d results", len(us), len(ms))
	}
	wantErrs := []error{nil, job.ErrLeaseLost, job.ErrConflict, job.ErrLeaseLost, job.ErrNotFound, nil, job.ErrInvalid, nil}
	for i, want := range wantErrs {
		got := ms[i].Err
		if (want == nil) != (got == nil) || (want != nil && !errors.Is(got, want)) {
			t.Fatalf("update %d (%s → %s): got error %v, want %v", i, us[i].JobID, us[i].To, got, want)
		}
		if want == nil && (ms[i].Job.ID != us[i].JobID || ms[i].Job.State != us[i].To || ms[i].Job.Reason != us[i].Reason) {
			t.Fatalf("update %d: got job %s in %s (%q), want %s in %s (%q)", i, ms[i].Job.ID, ms[i].Job.State, ms[i].Job.Reason, us[i].JobID, us[i].To, us[i].Reason)
		}
	}
	if ms[5].Job.ExternalID != "run-0" || ms[5].Job.Lease == nil || ms[5].Job.Lease.Token != tok(0) {
		t.Fatalf("job 0 after starting: got external id %q, lease %+v; want run-0, still held with token %d", ms[5].Job.ExternalID, ms[5].Job.Lease, tok(0))
	}
	if ms[7].Job.Lease != nil || ms[7].Job.Outputs["loss"] != "0.1" {
		t.Fatalf("job 4 after finishing: got lease %+v, outputs %v; want released, loss 0.1", ms[7].Job.Lease, ms[7].Job.Outputs)
	}

	// What each update left is what a read finds, with one event per move.
	wantStates := []job.State{job.Starting, job.Claimed, job.Claimed, job.Claimed, job.Finished}
	wantEvents := []int{4, 2, 2, 2, 3}
	for i, j := range js {
		got := s.get(t, j.ID)
		if got.State != wantStates[i] || len(got.Events) != wantEvents[i] {
			t.Fatalf("job %d after the batch: got %s with %d events, want %s with %d", i, got.State, len(got.Events), wantStates[i], wantEvents[i])
		}
	}
	after := s.get(t, js[0].ID)
	after.Events = nil
	sameJob(t, "GetJob after Transitions", after, ms[5].Job)
	last := s.get(t, js[4].ID).Events[2]
	if last.From != job.Claimed || last.To != job.Finished || last.Actor != "agent-a" || last.Reason != "done" {
		t.Fatalf("event of job 4's finish: got %+v, want claimed → finished by agent-a, done", last)
	}

	if ms, err := s.Transitions(c, nil); err != nil || len(ms) != 0 {
		t.Fatalf("Transitions of none: got %v, %v; want nothing", ms, err)
	}
	_, err = s.Transitions(c, make([]store.Update, store.MaxTransitions+1))
	wantErr(t, "Transitions of too many", err, job.ErrInvalid)
}

// testConcurrentTransitions checks that batches sent at once, each of
// other jobs, all land.
func testConcurrentTransitions(t *testing.T, s *suite) {
	c := ctx(t)
	s.queue(t, "q")
	const batches, per = 4, 8
	for range batches * per {
		s.enqueue(t, "q", job.Medium)
	}
	js, err := s.ClaimN(c, store.ClaimRequest{Agent: "agent-a", Queues: []string{"q"}, TTL: ttl}, batches*per)
	if err != nil || len(js) != batches*per {
		t.Fatalf("claiming %d jobs: got %d, %v", batches*per, len(js), err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, batches*per*2)
	for b := range batches {
		wg.Go(func() {
			for _, to := range []job.State{job.Submitting, job.Finished} {
				var us []store.Update
				for _, j := range js[b*per : (b+1)*per] {
					us = append(us, store.Update{JobID: j.ID, Token: j.Lease.Token, To: to})
				}
				ms, err := s.Transitions(c, us)
				if err != nil {
					errs <- err
					return
				}
				for i, m := range ms {
					if m.Err != nil {
						errs <- fmt.Errorf("moving %s to %s: %w", us[i].JobID, to, m.Err)
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, j := range js {
		if got := s.get(t, j.ID); got.State != job.Finished || len(got.Events) != 4 {
			t.Fatalf("job %s: got %s with %d events, want finished with 4", j.ID, got.State, len(got.Events))
		}
	}
}

// RefusedByDatabase checks that an update whose statement the database
// itself refuses is undone alone: the batch's other updates, before and
// after it, land with their events. refuse makes the database behind s
// refuse (with a trigger) any move whose reason is "boom"; it is specific
// to each database, so each store's own tests call this check.
func RefusedByDatabase(t *testing.T, s store.Store, refuse func(t *testing.T)) {
	t.Helper()
	c := ctx(t)
	if _, err := s.CreateQueue(c, job.Queue{Name: "q", Resource: job.LocalProcess}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := s.Enqueue(c, job.Job{Queue: "q", Spec: job.Spec{Entrypoint: []string{"true"}}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	js, err := s.ClaimN(c, store.ClaimRequest{Agent: "a", Queues: []string{"q"}, TTL: ttl}, 3)
	if err != nil || len(js) != 3 {
		t.Fatalf("claiming 3 jobs: got %d, %v", len(js), err)
	}
	refuse(t)
	reasons := []string{"fine", "boom", "also fine"}
	var us []store.Update
	for i, j := range js {
		us = append(us, store.Update{JobID: j.ID, Token: j.Lease.Token, To: job.Submitting, Reason: reasons[i]})
	}
	ms, err := s.Transitions(c, us)
	if err != nil {
		t.Fatalf("Transitions: %v", err)
	}
	for i, m := range ms {
		boom := reasons[i] == "boom"
		if (m.Err != nil) != boom {
			t.Errorf("update %d (%s): got error %v, want failed %v", i, reasons[i], m.Err, boom)
		}
		got, err := s.GetJob(c, js[i].ID)
		if err != nil {
			t.Fatal(err)
		}
		want, events := job.Submitting, 3
		if boom {
			want, events = job.Claimed, 2
		}
		if got.State != want || len(got.Events) != events {
			t.Errorf("job %d after the batch: got %s with %d events, want %s with %d", i, got.State, len(got.Events), want, events)
		}
	}
	if errors.Is(ms[1].Err, job.ErrLeaseLost) || errors.Is(ms[1].Err, job.ErrConflict) {
		t.Errorf("the refused update: got %v, want the database's error", ms[1].Err)
	}
}

package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
)

// TestTransitionsOneFailsInTheDatabase checks that an update whose
// statement the database refuses (here a trigger raises on its reason)
// fails alone: the batch's other updates, before and after it, land.
func TestTransitionsOneFailsInTheDatabase(t *testing.T) {
	t.Parallel()
	dsn := schema(t, "batchfail")
	s := open(t, dsn)
	ctx := context.Background()
	if _, err := s.CreateQueue(ctx, job.Queue{Name: "q", Resource: job.LocalProcess}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := s.Enqueue(ctx, job.Job{Queue: "q", Spec: job.Spec{Entrypoint: []string{"true"}}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	js, err := s.ClaimN(ctx, store.ClaimRequest{Agent: "a", Queues: []string{"q"}, TTL: time.Hour}, 3)
	if err != nil || len(js) != 3 {
		t.Fatalf("claiming 3 jobs: got %d, %v", len(js), err)
	}
	conn := connect(t, dsn)
	if _, err := conn.Exec(ctx, `CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF NEW.reason = 'boom' THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$;
		CREATE TRIGGER refuse_boom BEFORE UPDATE ON jobs FOR EACH ROW EXECUTE FUNCTION refuse_boom()`); err != nil {
		t.Fatalf("creating the trigger: %v", err)
	}
	reasons := []string{"fine", "boom", "also fine"}
	var us []store.Update
	for i, j := range js {
		us = append(us, store.Update{JobID: j.ID, Token: j.Lease.Token, To: job.Submitting, Reason: reasons[i]})
	}
	ms, err := s.Transitions(ctx, us)
	if err != nil {
		t.Fatalf("Transitions: %v", err)
	}
	for i, m := range ms {
		if wantFail := reasons[i] == "boom"; (m.Err != nil) != wantFail {
			t.Errorf("update %d (%s): got error %v, want failed %v", i, reasons[i], m.Err, wantFail)
		}
		got, err := s.GetJob(ctx, js[i].ID)
		if err != nil {
			t.Fatal(err)
		}
		want := job.Submitting
		if reasons[i] == "boom" {
			want = job.Claimed
		}
		if got.State != want || len(got.Events) != map[job.State]int{job.Claimed: 2, job.Submitting: 3}[want] {
			t.Errorf("job %d after the batch: got %s with %d events, want %s", i, got.State, len(got.Events), want)
		}
	}
	if errors.Is(ms[1].Err, job.ErrLeaseLost) || errors.Is(ms[1].Err, job.ErrConflict) {
		t.Errorf("the refused update: got %v, want the database's error", ms[1].Err)
	}
}

package sqlite_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
	"github.com/slipway-ml/slipway/internal/store/sqlite"
)

// TestTransitionsOneFailsInTheDatabase checks that an update whose
// statement SQLite refuses (here a trigger aborts on its reason) is undone
// alone: the batch's other updates, before and after it, land.
func TestTransitionsOneFailsInTheDatabase(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "batch.db")
	s := open(t, path)
	t.Cleanup(func() { _ = s.Close() })
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
	exec := sqlite.OpenOld(t, path, sqlite.SchemaVersion())
	// It fires on the event of the move, after the job's row was updated:
	// undoing the move needs its savepoint.
	exec(`CREATE TRIGGER refuse_boom BEFORE INSERT ON events WHEN NEW.reason = 'boom'
		BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`)
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
		boom := reasons[i] == "boom"
		if (m.Err != nil) != boom {
			t.Errorf("update %d (%s): got error %v, want failed %v", i, reasons[i], m.Err, boom)
		}
		got, err := s.GetJob(ctx, js[i].ID)
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
		t.Errorf("the refused update: got %v, want SQLite's error", ms[1].Err)
	}
}

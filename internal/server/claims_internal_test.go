package server

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store/sqlite"
)

// TestClaimBesideMovesOnlyForUncappedQueues checks when the claim that a
// batch of moves carries may go to the store beside them rather than
// after them: only when no queue it asks for caps its running jobs (a
// final move may free a capped queue's slot for it), and not for a claim
// of every queue, nor for a queue that cannot be read.
func TestClaimBesideMovesOnlyForUncappedQueues(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	s, err := New(Config{Store: st, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateQueue(ctx, job.Queue{Name: "free", Resource: job.LocalProcess}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateQueue(ctx, job.Queue{Name: "capped", Resource: job.LocalProcess, MaxRunning: 2}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		queues []string
		want   bool
	}{
		{[]string{"free"}, true},
		{[]string{"capped"}, false},
		{[]string{"free", "capped"}, false},
		{[]string{api.AllQueues}, false},
		{[]string{"missing"}, false},
	} {
		if got := s.claimBeside(ctx, tc.queues); got != tc.want {
			t.Errorf("claim of %v beside the moves: got %v, want %v", tc.queues, got, tc.want)
		}
	}
}

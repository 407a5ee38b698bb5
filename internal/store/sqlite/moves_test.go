package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
)

// movesSetup returns a store with n claimed jobs, without a writer
// goroutine: the test runs the writer's transactions itself (commitNow).
func movesSetup(t *testing.T, n int) (*Store, []job.Job) {
	t.Helper()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "moves.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	if _, err := s.CreateQueue(ctx, job.Queue{Name: "q", Resource: job.LocalProcess}); err != nil {
		t.Fatal(err)
	}
	for range n {
		if _, err := s.Enqueue(ctx, job.Job{Queue: "q", Spec: job.Spec{Image: "x"}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	js, err := s.ClaimN(ctx, store.ClaimRequest{Agent: "a", Queues: []string{"q"}, TTL: time.Hour}, n)
	if err != nil || len(js) != n {
		t.Fatalf("claiming %d: got %d, %v", n, len(js), err)
	}
	return bareStore(t, path), js
}

// bareStore is the Store on path without its writer goroutine, whose
// preparing of statements between transactions would race with the
// test's transactions for the one writer connection.
func bareStore(t testing.TB, path string) *Store {
	t.Helper()
	w, err := openDB(path, false)
	if err != nil {
		t.Fatal(err)
	}
	w.SetMaxOpenConns(1)
	r, err := openDB(path, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(); _ = w.Close() })
	return &Store{path: path, w: w, r: r, stmts: map[string]*sql.Stmt{}}
}

// moveReqFor is the request Transitions sends for us.
func moveReqFor(us ...store.Update) *writeReq {
	m := &moveReq{us: us}
	return &writeReq{ctx: context.Background(), moves: m, errs: make([]error, 1), done: make(chan struct{}),
		fns: []func(context.Context, *wtx) error{func(ctx context.Context, tx *wtx) error {
			var err error
			m.res, err = moveBatch(ctx, tx, us)
			return err
		}}}
}

// commitNow runs batch in one transaction as the writer would.
func commitNow(s *Store, batch ...*writeReq) {
	n := 0
	for _, req := range batch {
		n += len(req.fns)
	}
	s.commit(batch, n)
	s.prepare(context.Background())
}

// TestMovesTogether checks that the move batches of one transaction run
// as one, in the order of their requests: a later request's move of a
// job sees what an earlier request's left, and each request gets its own
// results.
func TestMovesTogether(t *testing.T) {
	t.Parallel()
	s, js := movesSetup(t, 2)
	a, b := js[0], js[1]
	up := func(j job.Job, to job.State) store.Update {
		return store.Update{JobID: j.ID, Token: j.Lease.Token, To: to, Reason: string(to)}
	}
	r1 := moveReqFor(up(a, job.Submitting), up(b, job.Running))
	r2 := moveReqFor(up(a, job.Running), up(b, job.Submitting)) // b's move is backwards after r1's
	r3 := moveReqFor(up(a, job.Finished))
	commitNow(s, r1, r2, r3)
	for i, r := range []*writeReq{r1, r2, r3} {
		if !r.moves.ran || r.errs[0] != nil {
			t.Fatalf("request %d: got ran %v, error %v; want run with the others, no error", i, r.moves.ran, r.errs[0])
		}
		if len(r.moves.res.steps) != len(r.moves.us) || len(r.moves.res.errs) != len(r.moves.us) {
			t.Fatalf("request %d: got %d steps and %d errors for %d updates", i, len(r.moves.res.steps), len(r.moves.res.errs), len(r.moves.us))
		}
	}
	if err := r2.moves.res.errs[1]; !errors.Is(err, job.ErrConflict) {
		t.Fatalf("b moved back to submitting after running: got %v, want %v", err, job.ErrConflict)
	}
	if st := r2.moves.res.steps[0]; st.From != job.Submitting || st.Job.State != job.Running {
		t.Fatalf("a's move in request 2: got %s → %s, want submitting → running", st.From, st.Job.State)
	}
	if st := r3.moves.res.steps[0]; st.From != job.Running || st.Job.Lease != nil {
		t.Fatalf("a's move in request 3: got from %s, lease %+v; want from running, released", st.From, st.Job.Lease)
	}
	for _, w := range []struct {
		id     string
		state  job.State
		events int
	}{{a.ID, job.Finished, 5}, {b.ID, job.Running, 3}} {
		got, err := s.GetJob(t.Context(), w.id)
		if err != nil || got.State != w.state || len(got.Events) != w.events {
			t.Fatalf("job %s: got %s with %d events, %v; want %s with %d", w.id, got.State, len(got.Events), err, w.state, w.events)
		}
	}
}

// TestMovesTogetherOneRefused checks that when the database refuses the
// merged batch of a transaction, each request runs alone, and only the
// refused one fails.
func TestMovesTogetherOneRefused(t *testing.T) {
	t.Parallel()
	s, js := movesSetup(t, 3)
	if _, err := s.w.ExecContext(t.Context(), `CREATE TRIGGER refuse_boom BEFORE INSERT ON events WHEN NEW.reason = 'boom'
		BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`); err != nil {
		t.Fatal(err)
	}
	var reqs []*writeReq
	for i, reason := range []string{"fine", "boom", "also fine"} {
		reqs = append(reqs, moveReqFor(store.Update{JobID: js[i].ID, Token: js[i].Lease.Token, To: job.Submitting, Reason: reason}))
	}
	commitNow(s, reqs...)
	for i, r := range reqs {
		var be batchError
		boom := i == 1
		if r.moves.ran || errors.As(r.errs[0], &be) != boom {
			t.Fatalf("request %d: got ran with the others %v, error %v; want alone, failed %v", i, r.moves.ran, r.errs[0], boom)
		}
		want, events := job.Submitting, 3
		if boom {
			want, events = job.Claimed, 2
		}
		got, err := s.GetJob(t.Context(), js[i].ID)
		if err != nil || got.State != want || len(got.Events) != events {
			t.Fatalf("job %d: got %s with %d events, %v; want %s with %d", i, got.State, len(got.Events), err, want, events)
		}
	}
}

package sqlite

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
)

// claimsSetup returns a store, without its writer goroutine (see
// bareStore), with queue "q" of jobs at the priorities given, oldest
// first, queue "capped" of 5 jobs and a max_running of 3, and the empty
// queue "empty"; and the ids of q's jobs.
func claimsSetup(t *testing.T, prios ...job.Priority) (*Store, []string) {
	t.Helper()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "claims.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	for _, q := range []job.Queue{{Name: "q"}, {Name: "capped", MaxRunning: 3}, {Name: "empty"}} {
		q.Resource = job.LocalProcess
		if _, err := s.CreateQueue(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	for i, p := range prios {
		j, err := s.Enqueue(ctx, job.Job{ID: fmt.Sprintf("q%d", i), Queue: "q", Priority: p, Spec: job.Spec{Image: "x"}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, j.ID)
	}
	for i := range 5 {
		if _, err := s.Enqueue(ctx, job.Job{ID: fmt.Sprintf("c%d", i), Queue: "capped", Spec: job.Spec{Image: "x"}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	return bareStore(t, path), ids
}

// claimFor is the write ClaimN sends for agent's claim of n jobs of queues.
func claimFor(t *testing.T, agent string, n int, queues ...string) *writeReq {
	return claimWrite(t.Context(), store.ClaimRequest{Agent: agent, Queues: queues, TTL: time.Hour, TokenID: "tok-" + agent}, n)
}

// claimedIDs are the ids of the jobs w's claim took, in order.
func claimedIDs(w *writeReq) []string {
	var ids []string
	for _, r := range w.claim.rows {
		ids = append(ids, r.ID)
	}
	return ids
}

// TestClaimsTogether checks that the claims of one transaction run as one
// pass that gives each what it would have got alone, in the order they
// came: by priority then age within a queue, within its max_running, each
// lease and event its own agent's, job.ErrNoJob to a claim left with none.
func TestClaimsTogether(t *testing.T) {
	t.Parallel()
	s, q := claimsSetup(t, job.Low, job.High, job.Medium, job.High, job.Medium, job.Critical)
	reqs := []*writeReq{
		claimFor(t, "a", 2, "q"),
		claimFor(t, "b", 2, "capped"),
		claimFor(t, "c", 3, "q"),
		claimFor(t, "d", 2, "capped"), // the cap of 3 leaves it one
		claimFor(t, "e", 1, "empty"),
		claimFor(t, "f", 5, "q"), // one left
		claimFor(t, "g", 1, "q"), // none left
	}
	commitNow(s, reqs...)
	want := []struct {
		ids []string
		err error
	}{
		{[]string{q[5], q[1]}, nil},
		{[]string{"c0", "c1"}, nil},
		{[]string{q[3], q[2], q[4]}, nil},
		{[]string{"c2"}, nil},
		{nil, job.ErrNoJob},
		{[]string{q[0]}, nil},
		{nil, job.ErrNoJob},
	}
	for i, w := range want {
		r := reqs[i]
		agent := r.claim.req.Agent
		if !r.claim.ran || !errors.Is(r.errs[0], w.err) || (w.err == nil) != (r.errs[0] == nil) {
			t.Fatalf("claim of %s: got ran %v, error %v; want run with the others, error %v", agent, r.claim.ran, r.errs[0], w.err)
		}
		if got := claimedIDs(r); !slices.Equal(got, w.ids) {
			t.Fatalf("claim of %s: got jobs %v, want %v", agent, got, w.ids)
		}
		for _, c := range r.claim.rows {
			l := c.Lease
			if c.State != job.Claimed || l == nil || l.Agent != agent || l.Token != 1 || l.TokenID != "tok-"+agent {
				t.Fatalf("job %s claimed by %s: got state %s, lease %+v; want claimed, token 1, agent %s, token id tok-%s", c.ID, agent, c.State, l, agent, agent)
			}
			got, err := s.GetJob(t.Context(), c.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Lease == nil || got.Lease.Agent != agent || len(got.Events) != 2 || got.Events[1].Actor != agent || got.Events[1].To != job.Claimed {
				t.Fatalf("job %s as stored: got lease %+v, events %+v; want held by %s, its claim's event by %s", c.ID, got.Lease, got.Events, agent, agent)
			}
		}
	}
}

// TestClaimsTogetherOneRefused checks that when the database refuses the
// claims run together, each runs alone, and only the refused one fails.
func TestClaimsTogetherOneRefused(t *testing.T) {
	t.Parallel()
	s, q := claimsSetup(t, job.Medium, job.Medium, job.Medium)
	if _, err := s.w.ExecContext(t.Context(), `CREATE TRIGGER refuse_boom BEFORE INSERT ON events WHEN NEW.actor = 'boom'
		BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`); err != nil {
		t.Fatal(err)
	}
	reqs := []*writeReq{claimFor(t, "a", 1, "q"), claimFor(t, "boom", 1, "q"), claimFor(t, "c", 1, "q")}
	commitNow(s, reqs...)
	want := [][]string{{q[0]}, nil, {q[1]}}
	for i, r := range reqs {
		boom := i == 1
		if r.claim.ran || (r.errs[0] != nil) != boom {
			t.Fatalf("claim of %s: got ran with the others %v, error %v; want alone, failed %v", r.claim.req.Agent, r.claim.ran, r.errs[0], boom)
		}
		if got := claimedIDs(r); !boom && !slices.Equal(got, want[i]) {
			t.Fatalf("claim of %s: got jobs %v, want %v", r.claim.req.Agent, got, want[i])
		}
	}
	if j, err := s.GetJob(t.Context(), q[2]); err != nil || j.State != job.Queued || len(j.Events) != 1 {
		t.Fatalf("job %s, left to the refused claim: got %s with %d events, %v; want queued with 1", q[2], j.State, len(j.Events), err)
	}
}

// BenchmarkClaimsTogether measures the writer's CPU per job for 16
// claims of 8 jobs of one queue in one transaction, taken together (as
// the writer does) or each alone in its own savepoint (as it did), each
// round of claims then ended in one batch of moves.
func BenchmarkClaimsTogether(b *testing.B) {
	const claims, per = 16, 8
	for _, alone := range []bool{false, true} {
		b.Run(fmt.Sprint("alone=", alone), func(b *testing.B) {
			ctx := b.Context()
			path := filepath.Join(b.TempDir(), "claims.db")
			s, err := Open(ctx, path)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.CreateQueue(ctx, job.Queue{Name: "q", Resource: job.LocalProcess}); err != nil {
				b.Fatal(err)
			}
			for i := range b.N * claims * per {
				if _, err := s.Enqueue(ctx, job.Job{ID: fmt.Sprintf("j%d", i), Queue: "q", Spec: job.Spec{Image: "x"}}, nil); err != nil {
					b.Fatal(err)
				}
			}
			_ = s.Close()
			s = bareStore(b, path)
			cpu0 := processCPU(b)
			b.ResetTimer()
			for range b.N {
				reqs := make([]*writeReq, claims)
				for i := range reqs {
					reqs[i] = claimWrite(ctx, store.ClaimRequest{Agent: fmt.Sprint("agent-", i), Queues: []string{"q"}, TTL: time.Hour}, per)
					if alone {
						reqs[i].claim.req.Queues = nil // not a claim of one queue: runs alone
					}
				}
				commitNow(s, reqs...)
				var us []store.Update
				for _, r := range reqs {
					if r.errs[0] != nil {
						b.Fatal(r.errs[0])
					}
					for _, c := range r.claim.rows {
						us = append(us, store.Update{JobID: c.ID, Token: c.Lease.Token, To: job.Finished})
					}
				}
				commitNow(s, moveReqFor(us...))
			}
			b.StopTimer()
			b.ReportMetric(float64(processCPU(b)-cpu0)/float64(time.Microsecond)/float64(b.N*claims*per), "cpu-µs/job")
		})
	}
}

// processCPU is the CPU time, user and system, this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestMovesAndClaimsTogether checks that the moves of a transaction run
// before its claims, with their events recorded in that order: a job that
// a move hands back is claimed in the same commit, once.
func TestMovesAndClaimsTogether(t *testing.T) {
	t.Parallel()
	s, js := movesSetup(t, 2)
	a, b := js[0], js[1]
	up := func(j job.Job, to job.State) store.Update {
		return store.Update{JobID: j.ID, Token: j.Lease.Token, To: to, Reason: string(to)}
	}
	reqs := []*writeReq{
		claimFor(t, "x", 1, "q"),
		moveReqFor(up(a, job.Queued)),
		moveReqFor(up(b, job.Submitting)),
		claimFor(t, "y", 1, "q"),
	}
	commitNow(s, reqs...)
	for i, r := range reqs {
		ran := r.claim != nil && r.claim.ran || r.moves != nil && r.moves.ran
		if !ran {
			t.Fatalf("request %d: not run with the others", i)
		}
	}
	if got := claimedIDs(reqs[0]); !slices.Equal(got, []string{a.ID}) || reqs[0].errs[0] != nil {
		t.Fatalf("claim of x: got %v, %v; want [%s], handed back in the same commit", got, reqs[0].errs[0], a.ID)
	}
	if err := reqs[3].errs[0]; !errors.Is(err, job.ErrNoJob) {
		t.Fatalf("claim of y: got %v, want %v", err, job.ErrNoJob)
	}
	got, err := s.GetJob(t.Context(), a.ID)
	if err != nil {
		t.Fatal(err)
	}
	var path []string
	for _, e := range got.Events {
		path = append(path, fmt.Sprintf("%s by %s", e.To, e.Actor))
	}
	if want := []string{"queued by user", "claimed by a", "queued by a", "claimed by x"}; !slices.Equal(path, want) {
		t.Fatalf("events of %s: got %v, want %v", a.ID, path, want)
	}
	if got.Lease == nil || got.Lease.Agent != "x" || got.Lease.Token != a.Lease.Token+1 {
		t.Fatalf("job %s: got lease %+v, want held by x with token %d", a.ID, got.Lease, a.Lease.Token+1)
	}
}

package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
	"github.com/slipway-ml/slipway/internal/store/sqlite"
	"github.com/slipway-ml/slipway/internal/store/storetest"
)

func open(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("opening %s: %v", path, err)
	}
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	storetest.Run(t, func(t *testing.T, name string) store.Store {
		path := filepath.Join(dir, name+".db")
		// Reads by state ask the half of the jobs their state is in: no
		// conformance test may leave a job in the other. (The suite closes
		// its store first: the check opens the file again.)
		t.Cleanup(func() {
			s := open(t, path)
			defer s.Close()
			if n := s.HeldOutOfStep(context.Background(), t); n != 0 {
				t.Errorf("%d jobs with a lease agent and a state out of step (a held state without one, or one in another state)", n)
			}
		})
		return open(t, path)
	})
}

func TestWALAndMigrations(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "nested", "dir", "slipway.db")
	ctx := t.Context()
	for i := range 3 {
		s := open(t, sqlite.Scheme+path)
		if got := s.JournalMode(ctx, t); got != "wal" {
			t.Fatalf("open %d: got journal_mode %q, want wal", i, got)
		}
		versions := s.Migrations(ctx, t)
		if len(versions) != sqlite.SchemaVersion() {
			t.Fatalf("open %d: got migrations %v, want 1..%d once each", i, versions, sqlite.SchemaVersion())
		}
		for j, v := range versions {
			if v != j+1 {
				t.Fatalf("open %d: got migrations %v, want 1..%d in order", i, versions, sqlite.SchemaVersion())
			}
		}
		if i == 0 {
			if _, err := s.CreateQueue(ctx, job.Queue{Name: "q", Resource: job.LocalProcess}); err != nil {
				t.Fatalf("creating queue: %v", err)
			}
		} else if _, err := s.GetQueue(ctx, "q"); err != nil {
			t.Fatalf("open %d: getting the queue made before: %v", i, err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("closing: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("closing twice: %v", err)
		}
	}
}

func TestOpenTwiceAtOnce(t *testing.T) {
	t.Parallel()
	// Two stores on one file, as two processes would have: a job is
	// claimed by exactly one of them.
	path := filepath.Join(t.TempDir(), "shared.db")
	ctx := t.Context()
	a, b := open(t, path), open(t, path)
	t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
	if _, err := a.CreateQueue(ctx, job.Queue{Name: "q", Resource: job.LocalProcess}); err != nil {
		t.Fatalf("creating queue: %v", err)
	}
	if _, err := b.Enqueue(ctx, job.Job{ID: "j1", Queue: "q", Spec: job.Spec{Image: "x"}}, nil); err != nil {
		t.Fatalf("enqueueing through the other store: %v", err)
	}
	req := store.ClaimRequest{Agent: "agent", Queues: []string{"q"}, TTL: time.Minute}
	errs := make(chan error, 2)
	for _, s := range []*sqlite.Store{a, b} {
		go func() { _, err := s.Claim(ctx, req); errs <- err }()
	}
	var claimed, empty int
	for range 2 {
		switch err := <-errs; {
		case err == nil:
			claimed++
		case errors.Is(err, job.ErrNoJob):
			empty++
		default:
			t.Fatalf("claiming: %v", err)
		}
	}
	if claimed != 1 || empty != 1 {
		t.Fatalf("got %d claims and %d ErrNoJob, want 1 and 1", claimed, empty)
	}
}

func TestParseDSN(t *testing.T) {
	t.Parallel()
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	cases := []struct {
		dsn, want string
		err       error
	}{
		{"/var/lib/slipway/db.sqlite", "/var/lib/slipway/db.sqlite", nil},
		{"sqlite:///var/lib/slipway/db.sqlite", "/var/lib/slipway/db.sqlite", nil},
		{"sqlite://data/slipway.db", abs("data/slipway.db"), nil},
		{"slipway.db", abs("slipway.db"), nil},
		{"", "", job.ErrInvalid},
		{"sqlite://", "", job.ErrInvalid},
		{":memory:", "", job.ErrInvalid},
		{"file:x.db?mode=memory", "", job.ErrInvalid},
		{"x.db?_pragma=foo", "", job.ErrInvalid},
	}
	for _, tc := range cases {
		got, err := sqlite.ParseDSN(tc.dsn)
		if !errors.Is(err, tc.err) || got != tc.want {
			t.Errorf("ParseDSN(%q): got %q, %v; want %q, %v", tc.dsn, got, err, tc.want, tc.err)
		}
	}
}

func FuzzParseDSN(f *testing.F) {
	for _, s := range []string{"/a/b.db", "sqlite://x.db", "sqlite:///abs", "", "?", "file:x", ":memory:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, dsn string) {
		path, err := sqlite.ParseDSN(dsn)
		if err != nil {
			if !errors.Is(err, job.ErrInvalid) {
				t.Fatalf("ParseDSN(%q): got error %v, want one wrapping ErrInvalid", dsn, err)
			}
			return
		}
		if !filepath.IsAbs(path) {
			t.Fatalf("ParseDSN(%q) = %q: want an absolute path", dsn, path)
		}
		if again, err := sqlite.ParseDSN(path); err != nil || again != path {
			t.Fatalf("ParseDSN(%q) = %q, %v: want the path back", path, again, err)
		}
	})
}

func benchStore(b *testing.B) (*sqlite.Store, context.Context) {
	b.Helper()
	s := open(b, filepath.Join(b.TempDir(), "bench.db"))
	b.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	if _, err := s.CreateQueue(ctx, job.Queue{Name: "q", Resource: job.LocalProcess}); err != nil {
		b.Fatal(err)
	}
	return s, ctx
}

func BenchmarkEnqueue(b *testing.B) {
	s, _ := benchStore(b)
	storetest.BenchEnqueue(b, s, 0)
}

// BenchmarkClaim measures one claim and the transition that ends the job,
// the store's share of running a job, on a queue of b.N jobs.
func BenchmarkClaim(b *testing.B) {
	s, _ := benchStore(b)
	storetest.BenchClaim(b, s, 0)
}

// BenchmarkEnqueueParallel enqueues from many goroutines at once, as many
// clients of one server do; their writes share commits.
func BenchmarkEnqueueParallel(b *testing.B) {
	s, _ := benchStore(b)
	storetest.BenchEnqueue(b, s, 8)
}

// BenchmarkClaimParallel is BenchmarkClaim with many agents at once.
func BenchmarkClaimParallel(b *testing.B) {
	s, _ := benchStore(b)
	storetest.BenchClaim(b, s, 8)
}

// TestGroupCommitIsolatesFailures enqueues from many goroutines at once,
// half of them with ids already taken: the writes share transactions, yet
// each failure is undone alone and every other write lands.
func TestGroupCommitIsolatesFailures(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := open(t, filepath.Join(t.TempDir(), "group.db"))
	t.Cleanup(func() { _ = s.Close() })
	if _, err := s.CreateQueue(ctx, job.Queue{Name: "q", Resource: job.LocalProcess}); err != nil {
		t.Fatalf("creating queue: %v", err)
	}
	const n = 64
	for i := range n / 2 {
		if _, err := s.Enqueue(ctx, job.Job{ID: fmt.Sprintf("dup%d", i), Queue: "q", Spec: job.Spec{Image: "x"}}, nil); err != nil {
			t.Fatalf("enqueueing: %v", err)
		}
	}
	errs := make(chan error, n)
	for i := range n {
		id := fmt.Sprintf("new%d", i)
		if i%2 == 0 {
			id = fmt.Sprintf("dup%d", i/2)
		}
		go func() {
			_, err := s.Enqueue(ctx, job.Job{ID: id, Queue: "q", Spec: job.Spec{Image: "x"}}, []byte(id))
			errs <- err
		}()
	}
	var exists int
	for range n {
		switch err := <-errs; {
		case errors.Is(err, job.ErrExists):
			exists++
		case err != nil:
			t.Fatalf("enqueueing: %v", err)
		}
	}
	if exists != n/2 {
		t.Fatalf("got %d ErrExists, want %d", exists, n/2)
	}
	js, err := s.ListJobs(ctx, store.JobFilter{Queue: "q"})
	if err != nil {
		t.Fatalf("listing: %v", err)
	}
	if len(js) != n {
		t.Fatalf("got %d jobs, want %d", len(js), n)
	}
	for i := 1; i < n; i += 2 {
		id := fmt.Sprintf("new%d", i)
		if code, err := s.Code(ctx, id); err != nil || string(code) != id {
			t.Fatalf("code of %s: got %q, %v; want %q", id, code, err, id)
		}
		if j, err := s.GetJob(ctx, id); err != nil || len(j.Events) != 1 {
			t.Fatalf("job %s: got %d events, %v; want 1", id, len(j.Events), err)
		}
	}
	if j, err := s.GetJob(ctx, "dup0"); err != nil || len(j.Events) != 1 {
		t.Fatalf("job dup0: got %d events, %v; want only its first enqueue's", len(j.Events), err)
	}
	if _, err := s.Code(ctx, "dup0"); !errors.Is(err, job.ErrNotFound) {
		t.Fatalf("code of dup0: got %v, want ErrNotFound: the refused enqueue's code must be undone", err)
	}
}

func TestWriteAfterClose(t *testing.T) {
	t.Parallel()
	s := open(t, filepath.Join(t.TempDir(), "closed.db"))
	if err := s.Close(); err != nil {
		t.Fatalf("closing: %v", err)
	}
	_, err := s.CreateQueue(t.Context(), job.Queue{Name: "q", Resource: job.LocalProcess})
	if !errors.Is(err, sqlite.ErrClosed) {
		t.Fatalf("writing to a closed store: got %v, want ErrClosed", err)
	}
}

// TestClaimUsesIndex checks that Claim finds the next job through the
// jobs_claim index, without scanning or sorting the queue, with or without
// a cap on the queue's held jobs.
func TestClaimUsesIndex(t *testing.T) {
	t.Parallel()
	s := open(t, filepath.Join(t.TempDir(), "plan.db"))
	t.Cleanup(func() { _ = s.Close() })
	for _, p := range s.ClaimPlans(t.Context(), t) {
		plan := strings.Join(p, "\n")
		if !strings.Contains(plan, "INDEX jobs_claim") || strings.Contains(plan, "TEMP B-TREE") {
			t.Fatalf("claim plan:\n%s\nwant a search using index jobs_claim and no temp b-tree for ORDER BY", plan)
		}
	}
}

// TestOldLeaseMigrated checks that a lease held before migration 7 added
// lease_token_id keeps working, with no token id.
func TestOldLeaseMigrated(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "old.db")
	exec := sqlite.OpenOld(t, path, 6)
	now := time.Now().UnixMicro()
	exec(`INSERT INTO queues (name, resource, created_at, updated_at) VALUES ('q', 'local-process', ?, ?)`, now, now)
	exec(`INSERT INTO jobs (id, queue, state, priority, spec, lease_agent, lease_token, lease_expires_at, created_at, updated_at)
		VALUES ('old', 'q', 'running', 0, '{}', 'agent-old', 1, ?, ?, ?)`, time.Now().Add(time.Hour).UnixMicro(), now, now)
	storetest.OldLease(t, open(t, sqlite.Scheme+path), "old")
}

// TestBatchPlans checks that the statements of a batch find each job by
// its key, and never scan the jobs table.
func TestBatchPlans(t *testing.T) {
	t.Parallel()
	s := open(t, filepath.Join(t.TempDir(), "plan.db"))
	t.Cleanup(func() { _ = s.Close() })
	for name, p := range s.BatchPlans(t.Context(), t) {
		plan := strings.Join(p, "\n")
		t.Logf("%s:\n%s", name, plan)
		if strings.Contains(plan, "SCAN jobs") || strings.Contains(plan, "SCAN j ") || strings.Contains(plan, "SCAN j\n") {
			t.Errorf("plan of %s:\n%s\nwant no scan of jobs", name, plan)
		}
	}
}

// TestHeldIndexesMigrated checks that a database with jobs in every kind
// of state, as schema 7 left it, answers the same listings and counts
// once migration 8 split its indexes by lease, that its held jobs still
// count against their queue's cap and move on, and that migration 9 kept
// its events.
func TestHeldIndexesMigrated(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "old.db")
	exec := sqlite.OpenOld(t, path, 7)
	now := time.Now().UnixMicro()
	later := time.Now().Add(time.Hour).UnixMicro()
	exec(`INSERT INTO queues (name, resource, created_at, updated_at, max_running) VALUES ('q', 'local-process', ?1, ?1, 0), ('capped', 'local-process', ?1, ?1, 2)`, now)
	for _, j := range []struct{ id, queue, state, agent string }{
		{"j1", "q", "finished", ""}, {"j2", "q", "running", "agent-a"}, {"j3", "q", "queued", ""},
		{"j4", "capped", "claimed", "agent-b"}, {"j5", "capped", "starting", "agent-b"}, {"j6", "capped", "queued", ""},
		{"j7", "q", "claimed", "agent-a"}, {"j8", "q", "queued", ""},
	} {
		var expires int64
		if j.agent != "" {
			expires = later
		}
		exec(`INSERT INTO jobs (id, queue, state, priority, spec, lease_agent, lease_token, lease_expires_at, created_at, updated_at)
			VALUES (?, ?, ?, 0, '{}', ?, 1, ?, ?, ?)`, j.id, j.queue, j.state, j.agent, expires, now, now)
	}
	// Events as migration 9 finds them, by an AUTOINCREMENT that went
	// further than the rows left.
	for i, e := range []struct{ job, from, to string }{{"j5", "", "queued"}, {"j2", "", "queued"}, {"j5", "queued", "claimed"}} {
		exec(`INSERT INTO events (seq, job_id, at, from_state, to_state, reason, actor, attempt) VALUES (?, ?, ?, ?, ?, 'old', 'old', 1)`,
			10*(i+1), e.job, now, e.from, e.to)
	}
	exec(`UPDATE sqlite_sequence SET seq = 100 WHERE name = 'events'`)
	s := open(t, sqlite.Scheme+path)
	t.Cleanup(func() { _ = s.Close() })
	for _, c := range []struct {
		f    store.JobFilter
		want []string
	}{
		{store.JobFilter{}, []string{"j8", "j7", "j6", "j5", "j4", "j3", "j2", "j1"}},
		{store.JobFilter{Queue: "q"}, []string{"j8", "j7", "j3", "j2", "j1"}},
		{store.JobFilter{State: job.Claimed}, []string{"j7", "j4"}},
		{store.JobFilter{State: job.Queued}, []string{"j8", "j6", "j3"}},
		{store.JobFilter{Queue: "q", State: job.Running}, []string{"j2"}},
		{store.JobFilter{Queues: []string{"capped", "x"}}, []string{"j6", "j5", "j4"}},
		{store.JobFilter{Queue: "q", Limit: 2}, []string{"j8", "j7"}},
	} {
		js, err := s.ListJobs(ctx, c.f)
		var got []string
		for _, j := range js {
			got = append(got, j.ID)
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Fatalf("ListJobs(%+v): got %v, %v; want %v", c.f, got, err, c.want)
		}
	}
	counts, err := s.CountUnfinished(ctx)
	want := map[string]map[job.State]int{"q": {job.Queued: 2, job.Running: 1, job.Claimed: 1}, "capped": {job.Claimed: 1, job.Starting: 1, job.Queued: 1}}
	if err != nil || !reflect.DeepEqual(counts, want) {
		t.Fatalf("CountUnfinished: got %v, %v; want %v", counts, err, want)
	}
	if q, err := s.GetQueue(ctx, "q"); err != nil || q.Unfinished != 4 {
		t.Fatalf("queue q: got %d unfinished, %v; want 4", q.Unfinished, err)
	}
	_, err = s.Claim(ctx, store.ClaimRequest{Agent: "agent-c", Queues: []string{"capped"}, TTL: time.Hour})
	if !errors.Is(err, job.ErrNoJob) {
		t.Fatalf("claiming from capped with its 2 held jobs: got %v, want %v", err, job.ErrNoJob)
	}
	if _, err := s.Transition(ctx, store.Update{JobID: "j5", Token: 1, To: job.Finished, Holder: store.Holder{Agent: "agent-b"}}); err != nil {
		t.Fatalf("finishing j5: %v", err)
	}
	j5, err := s.GetJob(ctx, "j5")
	if err != nil {
		t.Fatal(err)
	}
	var events []string
	for _, e := range j5.Events {
		events = append(events, fmt.Sprintf("%d %s→%s", e.Seq, e.From, e.To))
	}
	if len(events) != 3 || events[0] != "10 →queued" || events[1] != "30 queued→claimed" || j5.Events[2].Seq <= 30 || j5.Events[2].To != job.Finished {
		t.Fatalf("events of j5: got %v; want its two old events as they were, then finished after them", events)
	}
	if j, err := s.Claim(ctx, store.ClaimRequest{Agent: "agent-c", Queues: []string{"capped"}, TTL: time.Hour}); err != nil || j.ID != "j6" {
		t.Fatalf("claiming from capped once j5 finished: got %s, %v; want j6", j.ID, err)
	}
	if err := s.DeleteQueue(ctx, "capped"); !errors.Is(err, job.ErrConflict) {
		t.Fatalf("deleting capped with held jobs: got %v, want %v", err, job.ErrConflict)
	}
}

// TestListPlans checks that ListJobs by queue reads the jobs no agent
// holds through jobs_queue and the held ones through jobs_held, that a
// read by state reads only the half its state is in, through its index,
// and that none walks the whole table.
func TestListPlans(t *testing.T) {
	t.Parallel()
	s := open(t, filepath.Join(t.TempDir(), "plan.db"))
	t.Cleanup(func() { _ = s.Close() })
	// The indexes each plan reads (a|b: either), and those it must not (!).
	want := map[string][]string{
		"queue":        {"jobs_queue", "jobs_held"},
		"state":        {"jobs_held", "!jobs_state", "!jobs_queue"}, // running: held
		"queue+state":  {"jobs_queue|jobs_state", "!jobs_held"},     // queued
		"queues+state": {"jobs_queue|jobs_state", "!jobs_held"},     // finished
	}
	plans := s.ListPlans(t.Context(), t)
	if len(plans) != len(want) {
		t.Fatalf("got plans of %d filters, want %d", len(plans), len(want))
	}
	for name, p := range plans {
		plan := strings.Join(p, "\n")
		for _, idx := range want[name] {
			uses := slices.ContainsFunc(strings.Split(strings.TrimPrefix(idx, "!"), "|"), func(i string) bool {
				return strings.Contains(plan, "INDEX "+i)
			})
			if uses == strings.HasPrefix(idx, "!") {
				t.Errorf("plan of ListJobs by %s:\n%s\nwant %v", name, plan, want[name])
			}
		}
		for _, line := range p {
			if line == "SCAN jobs" {
				t.Errorf("plan of ListJobs by %s:\n%s\nwant no walk of the whole table", name, plan)
			}
		}
	}
}

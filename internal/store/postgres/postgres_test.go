package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
	"github.com/slipway-ml/slipway/internal/store/postgres"
	"github.com/slipway-ml/slipway/internal/store/storetest"
)

// testDSN returns the server the tests use, from SLIPWAY_TEST_POSTGRES
// (scripts/postgres.sh prints one). Without it the tests skip, unless
// SLIPWAY_REQUIRE_POSTGRES=1 or SLIPWAY_REQUIRE_DOCKER=1, as make test
// sets, where they fail.
func testDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("SLIPWAY_TEST_POSTGRES")
	if dsn != "" {
		return dsn
	}
	if os.Getenv("SLIPWAY_REQUIRE_POSTGRES") == "1" || os.Getenv("SLIPWAY_REQUIRE_DOCKER") == "1" {
		t.Fatal("SLIPWAY_TEST_POSTGRES is not set: run scripts/postgres.sh and export the DSN it prints")
	}
	t.Skip("SLIPWAY_TEST_POSTGRES is not set: skipping the PostgreSQL tests")
	return ""
}

// withParams returns dsn with the given connection parameters added; dsn is
// a URL or key=value pairs.
func withParams(t testing.TB, dsn string, params map[string]string) string {
	t.Helper()
	if postgres.IsDSN(dsn) {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("parsing SLIPWAY_TEST_POSTGRES: %v", err)
		}
		q := u.Query()
		for k, v := range params {
			q.Set(k, v)
		}
		u.RawQuery = q.Encode()
		return u.String()
	}
	for k, v := range params {
		dsn += fmt.Sprintf(" %s=%s", k, v)
	}
	return dsn
}

// schema creates a schema of its own for t in the test database, dropped
// when t ends, and returns a DSN whose connections use it.
func schema(t testing.TB, name string) string {
	t.Helper()
	dsn := testDSN(t)
	schema := strings.ToLower(job.NewID("slipway_test_")) + "_" + name
	admin := connect(t, dsn)
	if _, err := admin.Exec(context.Background(), `CREATE SCHEMA `+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatalf("creating schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec(context.Background(), `DROP SCHEMA `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	return withParams(t, dsn, map[string]string{"search_path": schema, "application_name": schema})
}

// connect opens a plain connection, closed when t ends.
func connect(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatalf("connecting to SLIPWAY_TEST_POSTGRES: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func open(t testing.TB, dsn string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("opening the store: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	testDSN(t)
	var mu sync.Mutex
	dsns := map[string]string{} // by store name: the same name opens the same schema
	storetest.Run(t, func(t *testing.T, name string) store.Store {
		mu.Lock()
		dsn, ok := dsns[name]
		if !ok {
			dsn = schema(t, name)
			dsns[name] = dsn
		}
		mu.Unlock()
		s, err := postgres.Open(t.Context(), dsn)
		if err != nil {
			t.Fatalf("opening store %s: %v", name, err)
		}
		return s
	})
}

// TestMigrationsOnceAtOnce opens one schema from many stores at once, as
// servers starting together do: each migration is applied once, and every
// store works.
func TestMigrationsOnceAtOnce(t *testing.T) {
	t.Parallel()
	dsn := schema(t, "migrate")
	const n = 4
	stores := make([]*postgres.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = postgres.Open(t.Context(), dsn) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("opening store %d: %v", i, err)
		}
		t.Cleanup(func() { _ = stores[i].Close() })
	}
	conn := connect(t, dsn)
	rows, err := conn.Query(t.Context(), `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatalf("reading schema_migrations: %v", err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatalf("reading schema_migrations: %v", err)
	}
	if len(versions) != postgres.SchemaVersion() {
		t.Fatalf("got migrations %v, want 1..%d once each", versions, postgres.SchemaVersion())
	}
	for i, v := range versions {
		if v != i+1 {
			t.Fatalf("got migrations %v, want 1..%d in order", versions, postgres.SchemaVersion())
		}
	}
	if _, err := stores[0].CreateQueue(t.Context(), job.Queue{Name: "q", Resource: job.LocalProcess}); err != nil {
		t.Fatalf("creating a queue: %v", err)
	}
	for i, s := range stores {
		if _, err := s.GetQueue(t.Context(), "q"); err != nil {
			t.Fatalf("store %d: getting the queue: %v", i, err)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	dsn := testDSN(t)
	_, err := postgres.Open(t.Context(), "postgres://u:secret@127.0.0.1:notaport/db")
	if !errors.Is(err, job.ErrInvalid) {
		t.Fatalf("opening a malformed dsn: got %v, want ErrInvalid", err)
	}
	if err != nil && strings.Contains(err.Error(), "secret") {
		t.Fatalf("opening a malformed dsn: the error %q shows the password", err)
	}
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		u.User = url.UserPassword(u.User.Username(), "wrong-password")
		_, err := postgres.Open(t.Context(), u.String())
		if err == nil || strings.Contains(err.Error(), "wrong-password") {
			t.Fatalf("opening with a wrong password: got %v, want an error that does not show the password", err)
		}
	}
	missing := withParams(t, dsn, map[string]string{"search_path": "slipway_no_such_schema"})
	if _, err := postgres.Open(t.Context(), missing); err == nil || !strings.Contains(err.Error(), "search_path") {
		t.Fatalf("opening with a missing schema: got %v, want an error that names the search_path", err)
	}
}

// terminate ends every server session of the store whose schema and
// application name app is, as a restart or a failover would, and returns
// how many it ended.
func terminate(ctx context.Context, admin *pgx.Conn, app string) (int, error) {
	var n int
	err := admin.QueryRow(ctx, `SELECT count(*) FROM (
		SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()) t`, app).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("terminating the store's sessions: %w", err)
	}
	return n, nil
}

// TestConnectionsLost ends the store's server sessions under it, between
// calls and while agents claim and finish jobs: every call still succeeds,
// and every job is claimed once.
func TestConnectionsLost(t *testing.T) {
	t.Parallel()
	dsn := schema(t, "lost")
	u, err := url.Parse(dsn)
	app := ""
	if err == nil {
		app = u.Query().Get("application_name")
	}
	if app == "" {
		t.Skip("SLIPWAY_TEST_POSTGRES is not a URL: cannot find the store's sessions")
	}
	s := open(t, dsn)
	admin := connect(t, testDSN(t))
	ctx := t.Context()
	if _, err := s.CreateQueue(ctx, job.Queue{Name: "q", Resource: job.LocalProcess}); err != nil {
		t.Fatalf("creating queue: %v", err)
	}

	// Between calls: the pool's idle connections are all dead.
	kill := func() {
		t.Helper()
		if n, err := terminate(ctx, admin, app); err != nil || n == 0 {
			t.Fatalf("terminated %d sessions of the store, %v; want its pool's", n, err)
		}
	}
	kill()
	if _, err := s.GetQueue(ctx, "q"); err != nil {
		t.Fatalf("reading after the sessions ended: %v", err)
	}
	kill()
	if _, err := s.Enqueue(ctx, job.Job{ID: "first", Queue: "q", Spec: job.Spec{Image: "x"}}, []byte("code")); err != nil {
		t.Fatalf("enqueueing after the sessions ended: %v", err)
	}

	// During calls: agents claim and finish while sessions keep ending.
	const jobs, agents = 60, 3
	for i := range jobs {
		if _, err := s.Enqueue(ctx, job.Job{ID: fmt.Sprintf("j%d", i), Queue: "q", Spec: job.Spec{Image: "x"}}, nil); err != nil {
			t.Fatalf("enqueueing: %v", err)
		}
	}
	// Every few finished jobs, the agent that finished one ends all the
	// store's sessions, while the other agents are amid their calls.
	var (
		adminMu    sync.Mutex
		terminated int
	)
	killEvery := func(finished int) error {
		if finished%4 != 0 {
			return nil
		}
		adminMu.Lock()
		defer adminMu.Unlock()
		n, err := terminate(ctx, admin, app)
		terminated += n
		return err
	}
	var (
		mu       sync.Mutex
		claimed  = map[string]int{}
		finished int
		wg       sync.WaitGroup
		errs     = make(chan error, agents)
	)
	for a := range agents {
		wg.Go(func() {
			agent := fmt.Sprintf("agent-%d", a)
			for {
				j, err := s.Claim(ctx, store.ClaimRequest{Agent: agent, Queues: []string{"q"}, TTL: time.Hour})
				if errors.Is(err, job.ErrNoJob) {
					return
				}
				if err != nil {
					errs <- fmt.Errorf("%s claiming: %w", agent, err)
					return
				}
				mu.Lock()
				claimed[j.ID]++
				mu.Unlock()
				if err := s.AppendLogs(ctx, j.ID, j.Lease.Token, store.Holder{}, []job.LogLine{{Text: "hello"}}); err != nil {
					errs <- fmt.Errorf("%s appending logs: %w", agent, err)
					return
				}
				if _, err := s.Transition(ctx, store.Update{JobID: j.ID, Token: j.Lease.Token, To: job.Finished, Reason: "done"}); err != nil {
					errs <- fmt.Errorf("%s finishing %s: %w", agent, j.ID, err)
					return
				}
				mu.Lock()
				finished++
				n := finished
				mu.Unlock()
				if err := killEvery(n); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	if terminated < jobs/4 {
		t.Fatalf("terminated %d sessions while the agents worked, want at least %d", terminated, jobs/4)
	}
	// A claim retried after a lost reply may have taken a job that its
	// agent never saw; that job is still claimed, and its lease would
	// expire. Every other job ran exactly once.
	js, err := s.ListJobs(ctx, store.JobFilter{Queue: "q"})
	if err != nil {
		t.Fatalf("listing jobs: %v", err)
	}
	for _, j := range js {
		switch {
		case j.State == job.Finished && claimed[j.ID] == 1:
		case j.State == job.Claimed && claimed[j.ID] == 0:
			t.Logf("job %s: claimed by a reply that was lost", j.ID)
		default:
			t.Errorf("job %s: got state %s, claimed %d times; want finished once", j.ID, j.State, claimed[j.ID])
		}
	}
	if len(js) != jobs+1 {
		t.Fatalf("got %d jobs, want %d", len(js), jobs+1)
	}
	if code, err := s.Code(ctx, "first"); err != nil || string(code) != "code" {
		t.Fatalf("code: got %q, %v; want %q", code, err, "code")
	}
}

// TestClaimSkipsLockedRows holds one queued job's row locked, as a claim in
// flight does: another claim takes the next job at once instead of waiting.
func TestClaimSkipsLockedRows(t *testing.T) {
	t.Parallel()
	dsn := schema(t, "skip")
	s := open(t, dsn)
	ctx := t.Context()
	if _, err := s.CreateQueue(ctx, job.Queue{Name: "q", Resource: job.LocalProcess}); err != nil {
		t.Fatalf("creating queue: %v", err)
	}
	for _, id := range []string{"a", "b"} {
		if _, err := s.Enqueue(ctx, job.Job{ID: id, Queue: "q", Spec: job.Spec{Image: "x"}}, nil); err != nil {
			t.Fatalf("enqueueing: %v", err)
		}
	}
	locker := connect(t, dsn)
	tx, err := locker.Begin(ctx)
	if err != nil {
		t.Fatalf("beginning: %v", err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	if _, err := tx.Exec(ctx, `SELECT 1 FROM jobs WHERE id = 'a' FOR UPDATE`); err != nil {
		t.Fatalf("locking job a: %v", err)
	}
	// Were the locked row waited for, this would block until the test's
	// timeout: the lock is released only after it returns.
	j, err := s.Claim(ctx, store.ClaimRequest{Agent: "agent", Queues: []string{"q"}, TTL: time.Hour})
	if err != nil {
		t.Fatalf("claiming: %v", err)
	}
	if j.ID != "b" {
		t.Fatalf("claimed %s, want b: a's row is locked", j.ID)
	}
	_, err = s.Claim(ctx, store.ClaimRequest{Agent: "agent", Queues: []string{"q"}, TTL: time.Hour})
	if !errors.Is(err, job.ErrNoJob) {
		t.Fatalf("claiming with only a locked job left: got %v, want ErrNoJob", err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatalf("rolling back: %v", err)
	}
	if j, err := s.Claim(ctx, store.ClaimRequest{Agent: "agent", Queues: []string{"q"}, TTL: time.Hour}); err != nil || j.ID != "a" {
		t.Fatalf("claiming after the lock ended: got %s, %v; want a", j.ID, err)
	}
}

// TestClaimUsesIndex checks that the claim's inner SELECT finds the next
// job through the jobs_claim index rather than a scan and a sort.
func TestClaimUsesIndex(t *testing.T) {
	t.Parallel()
	dsn := schema(t, "plan")
	open(t, dsn)
	conn := connect(t, dsn)
	ctx := t.Context()
	// With few rows the planner prefers a scan; turning scans off asks
	// whether the index can serve the query at all.
	if _, err := conn.Exec(ctx, `SET enable_seqscan = off`); err != nil {
		t.Fatalf("setting enable_seqscan: %v", err)
	}
	rows, err := conn.Query(ctx, `EXPLAIN `+postgres.ClaimSQL, "q", "claimed", "r", "agent", time.Now(), time.Now(), "")
	if err != nil {
		t.Fatalf("explaining the claim: %v", err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("explaining the claim: %v", err)
	}
	plan := strings.Join(lines, "\n")
	if !strings.Contains(plan, "jobs_claim") || strings.Contains(plan, "Sort") {
		t.Fatalf("claim plan:\n%s\nwant a scan of index jobs_claim and no sort", plan)
	}
}

func benchStore(b *testing.B) (*postgres.Store, context.Context) {
	b.Helper()
	s := open(b, schema(b, "bench"))
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

// BenchmarkClaimParallel is BenchmarkClaim with many agents at once, where
// SKIP LOCKED keeps them from queueing behind one another.
func BenchmarkClaimParallel(b *testing.B) {
	s, _ := benchStore(b)
	storetest.BenchClaim(b, s, 4)
}

// TestOldLeaseMigrated checks that a lease held before migration 6 added
// lease_token_id keeps working, with no token id.
func TestOldLeaseMigrated(t *testing.T) {
	t.Parallel()
	dsn := schema(t, "oldlease")
	conn := connect(t, dsn)
	if err := postgres.MigrateTo(t.Context(), dsn, 5); err != nil {
		t.Fatalf("migrating to 5: %v", err)
	}
	for _, q := range []string{
		`INSERT INTO queues (name, resource, created_at, updated_at) VALUES ('q', 'local-process', now(), now())`,
		`INSERT INTO jobs (id, queue, state, priority, spec, lease_agent, lease_token, lease_expires_at, created_at, updated_at)
			VALUES ('old', 'q', 'running', 0, '{}', 'agent-old', 1, now() + interval '1 hour', now(), now())`,
	} {
		if _, err := conn.Exec(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("opening the old schema: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	storetest.OldLease(t, s, "old")
}

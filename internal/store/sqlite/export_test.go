package sqlite

import (
	"context"
	"testing"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
)

// OpenOld opens the database at path with only its first n migrations
// applied, as an older Slipway left it, for raw statements; closed when t
// ends.
func OpenOld(t *testing.T, path string, n int) func(query string, args ...any) {
	t.Helper()
	db, err := openDB(path, false)
	if err != nil {
		t.Fatalf("opening %s: %v", path, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := migrate(t.Context(), db, migrations[:n]); err != nil {
		t.Fatalf("migrating %s to %d: %v", path, n, err)
	}
	return func(query string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(t.Context(), query, args...); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
	}
}

// SchemaVersion is the version every opened database is at.
func SchemaVersion() int { return len(migrations) }

// JournalMode reports the database's journal mode, as the writer sees it.
func (s *Store) JournalMode(ctx context.Context, t *testing.T) string {
	t.Helper()
	var mode string
	if err := s.w.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatalf("reading journal_mode: %v", err)
	}
	return mode
}

// Migrations lists the versions recorded in schema_migrations, in order.
func (s *Store) Migrations(ctx context.Context, t *testing.T) []int {
	t.Helper()
	rows, err := s.r.QueryContext(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatalf("reading schema_migrations: %v", err)
	}
	defer rows.Close()
	var vs []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatalf("reading schema_migrations: %v", err)
		}
		vs = append(vs, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("reading schema_migrations: %v", err)
	}
	return vs
}

// ClaimPlans are SQLite's plans for ClaimN's statements, of several jobs
// and of one, each of which serves queues with and without a cap.
func (s *Store) ClaimPlans(ctx context.Context, t *testing.T) [][]string {
	t.Helper()
	args := []any{"claimed", "claimed by agent", "agent", 0, 0, "", "q", 8}
	return [][]string{s.plan(ctx, t, claimSQL, args...), s.plan(ctx, t, claimOneSQL, args...)}
}

// BatchPlans are SQLite's plans for the statements that read and write a
// batch of moves or claims, by name.
func (s *Store) BatchPlans(ctx context.Context, t *testing.T) map[string][]string {
	t.Helper()
	return map[string][]string{
		"held":    s.plan(ctx, t, heldSQL.texts[1], "a", "b"),
		"held1":   s.plan(ctx, t, heldSQL.texts[0], "a"),
		"keep1":   s.plan(ctx, t, keepSQL.texts[0], 1, "running", "r", "", "", "{}", 0),
		"keep":    s.plan(ctx, t, keepSQL.texts[1], 1, "running", "r", "", "", "{}", 0, nil, nil, nil, nil, nil, nil, nil),
		"release": s.plan(ctx, t, releaseSQL.texts[1], 1, "finished", "r", "", "", "{}", 0, nil, nil, nil, nil, nil, nil, nil),
		"pick":    s.plan(ctx, t, pickSQL, "q", 8),
		"leases1": s.plan(ctx, t, leasesSQL.texts[0], 1, "a", "", 0, "r", 0),
		"leases":  s.plan(ctx, t, leasesSQL.texts[1], 1, "a", "", 0, "r", 0, nil, nil, nil, nil, nil, nil),
	}
}

// ListPlans are SQLite's plans for ListJobs by queue, by state, and by
// both, by name.
func (s *Store) ListPlans(ctx context.Context, t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for name, f := range map[string]store.JobFilter{
		"queue": {Queue: "q"}, "state": {State: job.Running}, "queue+state": {Queue: "q", State: job.Queued},
		"queues+state": {Queues: []string{"a", "b"}, State: job.Finished},
	} {
		q, args := listSQL(f)
		out[name] = s.plan(ctx, t, q, args...)
	}
	return out
}

// HeldOutOfStep counts the jobs in a held state without a lease agent, and
// those with one in any other state.
func (s *Store) HeldOutOfStep(ctx context.Context, t *testing.T) int {
	t.Helper()
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM jobs WHERE (`+held+`) <> (state IN `+heldStates+`)`).Scan(&n); err != nil {
		t.Fatalf("counting jobs out of step: %v", err)
	}
	return n
}

func (s *Store) plan(ctx context.Context, t *testing.T, query string, args ...any) []string {
	t.Helper()
	rows, err := s.r.QueryContext(ctx, `EXPLAIN QUERY PLAN `+query, args...)
	if err != nil {
		t.Fatalf("explaining the claim: %v", err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatalf("explaining the claim: %v", err)
		}
		plan = append(plan, detail)
	}
	return plan
}

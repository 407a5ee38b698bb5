package sqlite

import (
	"context"
	"testing"
)

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

// ClaimPlan is SQLite's plan for Claim's statement.
func (s *Store) ClaimPlan(ctx context.Context, t *testing.T) []string {
	t.Helper()
	rows, err := s.r.QueryContext(ctx, `EXPLAIN QUERY PLAN `+claimSQL, "claimed", "claimed by agent", "agent", 0, 0, "q", "q")
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

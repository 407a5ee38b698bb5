package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migrations is the schema's history: migrations[i] takes the schema from
// version i to version i+1, and schema_migrations records every version
// applied. Open applies the missing ones in order, each in one transaction.
//
// To change the schema, append a new migration; never edit or reorder one
// that has been released, since databases out there already ran it. Times
// are INTEGER microseconds since the Unix epoch (UTC); JSON is TEXT; a
// priority is job.Priority's integer (low -1 up to critical 2), so changing
// those numbers needs a migration that rewrites jobs.priority.
var migrations = []string{
	// 1: queues, jobs, their code, events and logs, and agents.
	`
CREATE TABLE queues (
	name       TEXT PRIMARY KEY,
	resource   TEXT NOT NULL,
	config     TEXT,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
) STRICT;

-- seq is the enqueue order: FIFO within a priority, newest first in lists.
CREATE TABLE jobs (
	seq              INTEGER PRIMARY KEY AUTOINCREMENT,
	id               TEXT NOT NULL UNIQUE,
	queue            TEXT NOT NULL REFERENCES queues(name),
	state            TEXT NOT NULL,
	reason           TEXT NOT NULL DEFAULT '',
	attempt          INTEGER NOT NULL DEFAULT 1,
	priority         INTEGER NOT NULL,
	image            TEXT NOT NULL DEFAULT '',
	spec             TEXT NOT NULL,
	external_id      TEXT NOT NULL DEFAULT '',
	-- The lease is held while lease_agent is not empty; lease_token only
	-- ever grows, so that a released token is never valid again.
	lease_agent      TEXT NOT NULL DEFAULT '',
	lease_token      INTEGER NOT NULL DEFAULT 0,
	lease_expires_at INTEGER NOT NULL DEFAULT 0,
	cancel_requested INTEGER NOT NULL DEFAULT 0,
	created_at       INTEGER NOT NULL,
	updated_at       INTEGER NOT NULL
) STRICT;

-- Serves Claim: the next queued job of a queue, by priority then age.
CREATE INDEX jobs_claim ON jobs (queue, priority DESC, seq) WHERE state = 'queued';
-- Serves ListJobs by queue and the Unfinished counts.
CREATE INDEX jobs_queue ON jobs (queue, state, seq);
-- Serves ListJobs by state.
CREATE INDEX jobs_state ON jobs (state, seq);
-- Serves ExpireLeases.
CREATE INDEX jobs_lease ON jobs (lease_expires_at) WHERE lease_agent <> '';

CREATE TABLE job_code (
	job_id TEXT PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
	code   BLOB NOT NULL
) STRICT;

CREATE TABLE events (
	seq        INTEGER PRIMARY KEY AUTOINCREMENT,
	job_id     TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
	at         INTEGER NOT NULL,
	from_state TEXT NOT NULL,
	to_state   TEXT NOT NULL,
	reason     TEXT NOT NULL,
	actor      TEXT NOT NULL,
	attempt    INTEGER NOT NULL
) STRICT;
CREATE INDEX events_job ON events (job_id, seq);

CREATE TABLE logs (
	seq     INTEGER PRIMARY KEY AUTOINCREMENT,
	job_id  TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
	attempt INTEGER NOT NULL,
	at      INTEGER NOT NULL,
	stream  TEXT NOT NULL,
	text    TEXT NOT NULL
) STRICT;
CREATE INDEX logs_job ON logs (job_id, seq);

CREATE TABLE agents (
	id           TEXT PRIMARY KEY,
	name         TEXT NOT NULL,
	queues       TEXT NOT NULL,
	max_jobs     INTEGER NOT NULL,
	started_at   INTEGER NOT NULL,
	last_seen_at INTEGER NOT NULL
) STRICT;
`,
	// 2: the {{name}} template variables a queue declares, as a JSON array.
	`ALTER TABLE queues ADD COLUMN vars TEXT NOT NULL DEFAULT '[]';`,
	// 3: what a job's run left behind (model artifacts, metrics), a JSON object.
	`ALTER TABLE jobs ADD COLUMN outputs TEXT NOT NULL DEFAULT '{}';`,
	// 4: a cap on a queue's held jobs across agents (0: none), and the
	// Idempotency-Key a job was enqueued with: one job per key, ever.
	`
ALTER TABLE queues ADD COLUMN max_running INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN idempotency_key TEXT;
CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (idempotency_key) WHERE idempotency_key IS NOT NULL;
`,
	// 5: API tokens: the SHA-256 of each secret, never the secret; queues
	// is a JSON array (empty: every queue).
	`
CREATE TABLE tokens (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	role       TEXT NOT NULL,
	queues     TEXT NOT NULL,
	hash       TEXT NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;
`,
	// 6: a queue's policy (job.Policy as a JSON object; NULL: none).
	`ALTER TABLE queues ADD COLUMN policy TEXT;`,
	// 7: the id of the API token that claimed a job's lease ('' when
	// claimed without tokens, as every lease before this migration).
	`ALTER TABLE jobs ADD COLUMN lease_token_id TEXT NOT NULL DEFAULT '';`,
	// 8: the indexes by queue and by state keep only the jobs no agent
	// holds, and the held jobs are found by queue through jobs_held, whose
	// entry a job gets when claimed and loses when released: a held job's
	// moves (claimed → ... → running) change its row and no index, where
	// each moved its jobs_queue and jobs_state entries. A job is held
	// exactly while lease_agent is not empty, so every read by queue or
	// state asks both halves (see unheld and held in jobs.go). jobs_held
	// serves ExpireLeases too, which reads every held job (an agent's
	// slots, not the queue's backlog), so that neither a claim, a release
	// nor a renewal moves an entry by expiry (jobs_lease).
	`
DROP INDEX jobs_queue;
DROP INDEX jobs_state;
DROP INDEX jobs_lease;
CREATE INDEX jobs_queue ON jobs (queue, state, seq) WHERE lease_agent = '';
CREATE INDEX jobs_state ON jobs (state, seq) WHERE lease_agent = '';
CREATE INDEX jobs_held ON jobs (queue, seq) WHERE lease_agent <> '';
`,
	// 9: events without AUTOINCREMENT: every commit that recorded an event
	// rewrote sqlite_sequence's page for it. An event's seq is still
	// greater than every seq before it while those events stand (the
	// rowid after the greatest); only the events of deleted jobs may see
	// their seqs again, and seq orders the events of one job.
	`
CREATE TABLE events_new (
	seq        INTEGER PRIMARY KEY,
	job_id     TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
	at         INTEGER NOT NULL,
	from_state TEXT NOT NULL,
	to_state   TEXT NOT NULL,
	reason     TEXT NOT NULL,
	actor      TEXT NOT NULL,
	attempt    INTEGER NOT NULL
) STRICT;
INSERT INTO events_new (seq, job_id, at, from_state, to_state, reason, actor, attempt)
	SELECT seq, job_id, at, from_state, to_state, reason, actor, attempt FROM events;
DROP TABLE events;
ALTER TABLE events_new RENAME TO events;
CREATE INDEX events_job ON events (job_id, seq);
DELETE FROM sqlite_sequence WHERE name = 'events';
`,
}

// migrate brings db's schema to len(list). Each migration runs in its own
// BEGIN IMMEDIATE transaction that re-reads the current version, so two
// processes opening one file at once apply each migration once.
func migrate(ctx context.Context, db *sql.DB, list []string) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	applied_at INTEGER NOT NULL
) STRICT`); err != nil {
		return fmt.Errorf("creating schema_migrations: %w", err)
	}
	for i, m := range list {
		version := i + 1
		if err := applyMigration(ctx, db, version, m); err != nil {
			return fmt.Errorf("applying migration %d: %w", version, err)
		}
	}
	return nil
}

func applyMigration(ctx context.Context, db *sql.DB, version int, stmts string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	var done bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?)`, version).Scan(&done); err != nil {
		return err
	}
	if done {
		return nil
	}
	if _, err := tx.ExecContext(ctx, stmts); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, version, toDB(time.Now())); err != nil {
		return err
	}
	return tx.Commit()
}

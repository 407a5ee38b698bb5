package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrations is the schema's history: migrations[i] takes the schema from
// version i to version i+1, and schema_migrations records every version
// applied. Open applies the missing ones in order.
//
// To change the schema, append a new migration; never edit or reorder one
// that has been released, since databases out there already ran it. A
// priority is job.Priority's integer (low -1 up to critical 2), so changing
// those numbers needs a migration that rewrites jobs.priority. JSON is kept
// as text, byte for byte as the user wrote it.
var migrations = []string{
	// 1: queues, jobs, their code, events and logs, and agents.
	`
CREATE TABLE queues (
	name       text PRIMARY KEY,
	resource   text NOT NULL,
	config     text,
	-- The {{name}} template variables the config declares.
	vars       text[] NOT NULL DEFAULT '{}',
	created_at timestamptz NOT NULL,
	updated_at timestamptz NOT NULL
);

-- seq is the enqueue order: FIFO within a priority, newest first in lists.
CREATE TABLE jobs (
	seq              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	id               text NOT NULL UNIQUE,
	queue            text NOT NULL REFERENCES queues (name),
	state            text NOT NULL,
	reason           text NOT NULL DEFAULT '',
	attempt          integer NOT NULL DEFAULT 1,
	priority         smallint NOT NULL,
	image            text NOT NULL DEFAULT '',
	spec             text NOT NULL,
	external_id      text NOT NULL DEFAULT '',
	-- The lease is held while lease_agent is not empty; lease_token only
	-- ever grows, so that a released token is never valid again.
	lease_agent      text NOT NULL DEFAULT '',
	lease_token      bigint NOT NULL DEFAULT 0,
	lease_expires_at timestamptz,
	cancel_requested boolean NOT NULL DEFAULT false,
	created_at       timestamptz NOT NULL,
	updated_at       timestamptz NOT NULL
);

-- Serves Claim: the next queued job of a queue, by priority then age.
CREATE INDEX jobs_claim ON jobs (queue, priority DESC, seq) WHERE state = 'queued';
-- Serves ListJobs by queue and the Unfinished counts.
CREATE INDEX jobs_queue ON jobs (queue, state, seq);
-- Serves ListJobs by state.
CREATE INDEX jobs_state ON jobs (state, seq);
-- Serves ExpireLeases.
CREATE INDEX jobs_lease ON jobs (lease_expires_at) WHERE lease_agent <> '';

CREATE TABLE job_code (
	job_id text PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
	code   bytea NOT NULL
);

CREATE TABLE events (
	seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	job_id     text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
	at         timestamptz NOT NULL,
	from_state text NOT NULL,
	to_state   text NOT NULL,
	reason     text NOT NULL,
	actor      text NOT NULL,
	attempt    integer NOT NULL
);
CREATE INDEX events_job ON events (job_id, seq);

CREATE TABLE logs (
	seq     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	job_id  text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
	attempt integer NOT NULL,
	at      timestamptz NOT NULL,
	stream  text NOT NULL,
	text    text NOT NULL
);
CREATE INDEX logs_job ON logs (job_id, seq);

CREATE TABLE agents (
	id           text PRIMARY KEY,
	name         text NOT NULL,
	queues       text[] NOT NULL,
	max_jobs     integer NOT NULL,
	started_at   timestamptz NOT NULL,
	last_seen_at timestamptz NOT NULL
);
`,
	// 2: what a job's run left behind (model artifacts, metrics), a JSON object.
	`ALTER TABLE jobs ADD COLUMN outputs jsonb NOT NULL DEFAULT '{}';`,
	// 3: a cap on a queue's held jobs across agents (0: none), and the
	// Idempotency-Key a job was enqueued with: one job per key, ever
	// (NULLs, jobs without a key, are distinct).
	`
ALTER TABLE queues ADD COLUMN max_running integer NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN idempotency_key text UNIQUE;
`,
	// 4: API tokens: the SHA-256 of each secret, never the secret; no
	// queues means every queue.
	`
CREATE TABLE tokens (
	id         text PRIMARY KEY,
	name       text NOT NULL,
	role       text NOT NULL,
	queues     text[] NOT NULL DEFAULT '{}',
	hash       text NOT NULL,
	created_at timestamptz NOT NULL
);
`,
	// 5: a queue's policy (job.Policy as a JSON object; NULL: none).
	`ALTER TABLE queues ADD COLUMN policy text;`,
	// 6: the id of the API token that claimed a job's lease ('' when
	// claimed without tokens, as every lease before this migration).
	`ALTER TABLE jobs ADD COLUMN lease_token_id text NOT NULL DEFAULT '';`,
}

// migrationLock is the first key of the advisory lock that migrations hold;
// the second is the hash of the schema, so that stores in different schemas
// of one database migrate independently.
const migrationLock = 0x736c6970 // "slip"

// migrate brings the current schema to len(list), in one transaction that
// holds an advisory lock: servers starting at once wait for each other, and
// the later ones find the work done.
func migrate(ctx context.Context, pool *pgxpool.Pool, list []string) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var schema *string
	if err := tx.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return fmt.Errorf("reading the current schema: %w", err)
	}
	if schema == nil {
		return errors.New("no schema of the search_path exists: create it, or set search_path to one that does")
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, int32(migrationLock), *schema); err != nil {
		return fmt.Errorf("taking the migration lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    integer PRIMARY KEY,
	applied_at timestamptz NOT NULL DEFAULT now()
)`); err != nil {
		return fmt.Errorf("creating schema_migrations: %w", err)
	}
	var current int
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("reading schema_migrations: %w", err)
	}
	if current > len(list) {
		return fmt.Errorf("schema %s is at version %d, newer than this binary's %d: upgrade Slipway", *schema, current, len(list))
	}
	for i := current; i < len(list); i++ {
		version := i + 1
		if _, err := tx.Exec(ctx, list[i]); err != nil {
			return fmt.Errorf("applying migration %d: %w", version, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, version); err != nil {
			return fmt.Errorf("recording migration %d: %w", version, err)
		}
	}
	return commit(ctx, tx)
}

func commit(ctx context.Context, tx pgx.Tx) error {
	if err := tx.Commit(ctx); err != nil {
		return &commitError{err}
	}
	return nil
}

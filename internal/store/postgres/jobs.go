package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
)

// defaultLimit is the most rows a list returns when asked for 0.
const defaultLimit = 1000

const jobColumns = `id, queue, state, reason, attempt, priority, image, spec, external_id,
	lease_agent, lease_token, lease_expires_at, cancel_requested, created_at, updated_at, outputs, idempotency_key, lease_token_id`

// row is a job as stored, with the lease columns that job.Job shows only
// while the lease is held.
type row struct {
	job.Job
	token int64 // the current lease token, held or not
}

// held is r as the fenced writes check it.
func (r row) held() store.Held { return store.Held{Job: r.Job, Token: r.token} }

func scanJob(sc scanner) (row, error) {
	var (
		r                  row
		state, spec, agent string
		tokenID            string
		priority           int16
		expires            *time.Time
		created, updated   time.Time
		key                *string
	)
	err := sc.Scan(&r.ID, &r.Queue, &state, &r.Reason, &r.Attempt, &priority, &r.Image, &spec, &r.ExternalID,
		&agent, &r.token, &expires, &r.CancelRequested, &created, &updated, &r.Outputs, &key, &tokenID)
	if err != nil {
		return row{}, err
	}
	if key != nil {
		r.IdempotencyKey = *key
	}
	if len(r.Outputs) == 0 {
		r.Outputs = nil // as a new job has them
	}
	r.State, r.Priority = job.State(state), job.Priority(priority)
	if err := json.Unmarshal([]byte(spec), &r.Spec); err != nil {
		return row{}, fmt.Errorf("decoding the spec of job %s: %w", r.ID, err)
	}
	if agent != "" {
		l := &job.Lease{Agent: agent, Token: r.token, TokenID: tokenID}
		if expires != nil {
			l.ExpiresAt = expires.UTC()
		}
		r.Lease = l
	}
	r.CreatedAt, r.UpdatedAt = created.UTC(), updated.UTC()
	return r, nil
}

func collectJobs(rows pgx.Rows) ([]job.Job, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (job.Job, error) {
		j, err := scanJob(r)
		return j.Job, err
	})
}

// getJob reads one job in q; forUpdate locks its row until q commits.
func getJob(ctx context.Context, q querier, id string, forUpdate bool) (row, error) {
	sql := `SELECT ` + jobColumns + ` FROM jobs WHERE id = $1`
	if forUpdate {
		sql += ` FOR UPDATE`
	}
	r, err := scanJob(q.QueryRow(ctx, sql, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return row{}, job.ErrNotFound
	}
	return r, err
}

// addEvent records the move of j from from to j.State.
func addEvent(ctx context.Context, q querier, j job.Job, from job.State, actor string) error {
	_, err := q.Exec(ctx, `INSERT INTO events (job_id, at, from_state, to_state, reason, actor, attempt) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		j.ID, j.UpdatedAt, string(from), string(j.State), j.Reason, actor, j.Attempt)
	if err != nil {
		return fmt.Errorf("recording event: %w", err)
	}
	return nil
}

// enqueueSQL stores the job, its code when $10 is not NULL and its first
// event in one statement, so in one round trip; selecting from queues
// inserts nothing when the queue does not exist.
//
// A job whose idempotency key ($11) is taken is not inserted either: the
// statement then counts 0 and Enqueue reads the job that has the key.
const enqueueSQL = `WITH j AS (
	INSERT INTO jobs (id, queue, state, reason, attempt, priority, image, spec, created_at, updated_at, idempotency_key)
	SELECT $1, name, $2, $3, 1, $4, $5, $6, $7, $7, $11 FROM queues WHERE name = $8
	ON CONFLICT (idempotency_key) DO NOTHING
	RETURNING id
), c AS (
	INSERT INTO job_code (job_id, code) SELECT id, $10::bytea FROM j WHERE $10::bytea IS NOT NULL
), e AS (
	INSERT INTO events (job_id, at, from_state, to_state, reason, actor, attempt)
	SELECT id, $7, '', $2, $3, $9, 1 FROM j
)
SELECT count(*) FROM j`

// Enqueue stores a new queued job, with its code when code is not nil, and
// records the "queued" event; job.ErrNotFound when the queue does not exist,
// job.ErrExists when the id is taken. When j.IdempotencyKey names a job
// already stored, that job is returned and nothing is stored.
func (s *Store) Enqueue(ctx context.Context, j job.Job, code []byte) (job.Job, error) {
	if err := store.ValidateIdempotencyKey(j.IdempotencyKey); err != nil {
		return job.Job{}, err
	}
	if j.ID == "" {
		j.ID = job.NewSortedID("j")
	}
	if j.Priority < job.Low || j.Priority > job.Critical {
		return job.Job{}, fmt.Errorf("%w: job %s: %v", job.ErrInvalid, j.ID, j.Priority)
	}
	spec, err := json.Marshal(j.Spec)
	if err != nil {
		return job.Job{}, fmt.Errorf("%w: job %s: encoding spec: %v", job.ErrInvalid, j.ID, err)
	}
	t := now()
	out := job.Job{
		ID: j.ID, Queue: j.Queue, State: job.Queued, Reason: "enqueued", Attempt: 1, Priority: j.Priority,
		Image: j.Spec.Image, Spec: j.Spec, IdempotencyKey: j.IdempotencyKey, CreatedAt: t, UpdatedAt: t,
	}
	var key *string
	if j.IdempotencyKey != "" {
		key = &j.IdempotencyKey
	}
	var n int
	// With a key, running the statement again is harmless: the second run
	// finds the job of the first.
	err = s.retry(ctx, key != nil, func(ctx context.Context) error {
		if err := s.pool.QueryRow(ctx, enqueueSQL, out.ID, string(job.Queued), out.Reason, int16(out.Priority), out.Image,
			string(spec), t, out.Queue, "user", code, key).Scan(&n); err != nil || n > 0 || key == nil {
			return err
		}
		r, err := scanJob(s.pool.QueryRow(ctx, `SELECT `+jobColumns+` FROM jobs WHERE idempotency_key = $1`, *key))
		if err == nil {
			out, n = r.Job, 1
			return nil
		}
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // no such queue
		}
		return err
	})
	switch {
	case pgCode(err) == uniqueViolation:
		err = job.ErrExists
	case pgCode(err) == foreignKeyViolation:
		// The queue was deleted while this statement ran.
		err = fmt.Errorf("queue %s: %w", out.Queue, job.ErrNotFound)
	case err == nil && n == 0:
		err = fmt.Errorf("queue %s: %w", out.Queue, job.ErrNotFound)
	}
	if err != nil {
		return job.Job{}, fmt.Errorf("enqueueing job %s: %w", out.ID, err)
	}
	return out, nil
}

// GetJob returns a job with its events, oldest first.
func (s *Store) GetJob(ctx context.Context, id string) (job.Job, error) {
	var out job.Job
	// One snapshot, so that the job and its events agree.
	opts := pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	err := s.txWith(ctx, opts, func(ctx context.Context, tx pgx.Tx) error {
		r, err := getJob(ctx, tx, id, false)
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT seq, at, from_state, to_state, reason, actor, attempt FROM events WHERE job_id = $1 ORDER BY seq`, id)
		if err != nil {
			return fmt.Errorf("reading events: %w", err)
		}
		r.Events, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (job.Event, error) {
			e := job.Event{JobID: id}
			var from, to string
			err := row.Scan(&e.Seq, &e.At, &from, &to, &e.Reason, &e.Actor, &e.Attempt)
			e.At, e.From, e.To = e.At.UTC(), job.State(from), job.State(to)
			return e, err
		})
		if err != nil {
			return fmt.Errorf("reading events: %w", err)
		}
		out = r.Job
		return nil
	})
	if err != nil {
		return job.Job{}, fmt.Errorf("getting job %s: %w", id, err)
	}
	return out, nil
}

// ListJobs returns the jobs f selects, newest first, without their events.
func (s *Store) ListJobs(ctx context.Context, f store.JobFilter) ([]job.Job, error) {
	q := `SELECT ` + jobColumns + ` FROM jobs WHERE true`
	var args []any
	if f.Queue != "" {
		args = append(args, f.Queue)
		q += ` AND queue = $` + strconv.Itoa(len(args))
	}
	if len(f.Queues) > 0 {
		args = append(args, f.Queues)
		q += ` AND queue = ANY($` + strconv.Itoa(len(args)) + `)`
	}
	if f.State != "" {
		args = append(args, string(f.State))
		q += ` AND state = $` + strconv.Itoa(len(args))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultLimit
	}
	args = append(args, limit)
	q += ` ORDER BY seq DESC LIMIT $` + strconv.Itoa(len(args))
	var js []job.Job
	err := s.retry(ctx, true, func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		js, err = collectJobs(rows)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listing jobs: %w", err)
	}
	if js == nil {
		js = []job.Job{}
	}
	return js, nil
}

// Code returns the job's code tarball; job.ErrNotFound when it has none.
func (s *Store) Code(ctx context.Context, id string) ([]byte, error) {
	var code []byte
	err := s.retry(ctx, true, func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, `SELECT code FROM job_code WHERE job_id = $1`, id).Scan(&code)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		err = job.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading the code of job %s: %w", id, err)
	}
	if code == nil {
		code = []byte{}
	}
	return code, nil
}

// Cancel ends a queued job as canceled at once, with an event by "user"; for
// a held job it sets CancelRequested and the reason, so that its agent stops
// it. A job already ended is returned unchanged.
func (s *Store) Cancel(ctx context.Context, id, reason string) (job.Job, error) {
	var out job.Job
	err := s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		r, err := getJob(ctx, tx, id, true)
		if err != nil {
			return err
		}
		out = r.Job
		switch {
		case r.State == job.Queued:
			out.State, out.Reason, out.UpdatedAt = job.Canceled, clean(reason), now()
			if _, err := tx.Exec(ctx, `UPDATE jobs SET state = $1, reason = $2, updated_at = $3 WHERE id = $4`,
				string(out.State), out.Reason, out.UpdatedAt, id); err != nil {
				return err
			}
			return addEvent(ctx, tx, out, job.Queued, "user")
		case r.State.Held() && !r.CancelRequested:
			out.CancelRequested, out.Reason, out.UpdatedAt = true, clean(reason), now()
			_, err := tx.Exec(ctx, `UPDATE jobs SET cancel_requested = true, reason = $1, updated_at = $2 WHERE id = $3`,
				out.Reason, out.UpdatedAt, id)
			return err
		}
		return nil
	})
	if err != nil {
		return job.Job{}, fmt.Errorf("canceling job %s: %w", id, err)
	}
	return out, nil
}

// CountUnfinished implements store.Jobs.
func (s *Store) CountUnfinished(ctx context.Context) (map[string]map[job.State]int, error) {
	var counts map[string]map[job.State]int
	err := s.retry(ctx, true, func(ctx context.Context) error {
		counts = map[string]map[job.State]int{}
		rows, err := s.pool.Query(ctx, `SELECT queue, state, COUNT(*) FROM jobs WHERE state = ANY($1) GROUP BY queue, state`, store.Unfinished())
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var queue, state string
			var n int
			if err := rows.Scan(&queue, &state, &n); err != nil {
				return err
			}
			store.AddCount(counts, queue, job.State(state), n)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("counting jobs: %w", err)
	}
	return counts, nil
}

package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

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
	// spec is the job's spec as stored, when scanRow left it to be decoded
	// by decodeSpec: outside the writer goroutine, which every write waits on.
	spec string
}

func scanJob(sc scanner) (row, error) {
	r, err := scanRow(sc)
	if err != nil {
		return row{}, err
	}
	return r.decodeSpec()
}

// decodeSpec decodes the spec that scanRow left in r.spec.
func (r row) decodeSpec() (row, error) {
	if err := json.Unmarshal([]byte(r.spec), &r.Spec); err != nil {
		return row{}, fmt.Errorf("decoding the spec of job %s: %w", r.ID, err)
	}
	r.spec = ""
	return r, nil
}

// scanRow is scanJob without decoding the spec: see row.spec.
func scanRow(sc scanner) (row, error) {
	return newRowScanner(false).scan(sc)
}

// rowScanner scans rows of jobColumns, after a seq when it was made with
// one, into the same destinations every time: a batch reads many rows,
// and a fresh set of them for each cost a dozen allocations a row.
type rowScanner struct {
	seq                       int64 // the row's seq, when scanned
	r                         row
	state, agent, outputs     string
	tokenID                   string
	expires, created, updated int64
	key                       sql.NullString
	dest                      []any
}

func newRowScanner(withSeq bool) *rowScanner {
	s := &rowScanner{}
	if withSeq {
		s.dest = append(s.dest, &s.seq)
	}
	s.dest = append(s.dest, &s.r.ID, &s.r.Queue, &s.state, &s.r.Reason, &s.r.Attempt, &s.r.Priority, &s.r.Image, &s.r.spec,
		&s.r.ExternalID, &s.agent, &s.r.token, &s.expires, &s.r.CancelRequested, &s.created, &s.updated, &s.outputs, &s.key, &s.tokenID)
	return s
}

// scan reads the next row of sc as row.
func (s *rowScanner) scan(sc scanner) (row, error) {
	s.r = row{}
	if err := sc.Scan(s.dest...); err != nil {
		return row{}, err
	}
	r := s.r
	r.IdempotencyKey = s.key.String
	if s.outputs != "{}" {
		if err := json.Unmarshal([]byte(s.outputs), &r.Outputs); err != nil {
			return row{}, fmt.Errorf("decoding the outputs of job %s: %w", r.ID, err)
		}
	}
	r.State = job.State(s.state)
	if s.agent != "" {
		r.Lease = &job.Lease{Agent: s.agent, Token: r.token, ExpiresAt: fromDB(s.expires), TokenID: s.tokenID}
	}
	r.CreatedAt, r.UpdatedAt = fromDB(s.created), fromDB(s.updated)
	return r, nil
}

// getJob reads one job in q, a transaction or the read pool.
func getJob(ctx context.Context, q rowQuerier, id string) (row, error) {
	r, err := getRow(ctx, q, id)
	if err != nil {
		return row{}, err
	}
	return r.decodeSpec()
}

type rowQuerier interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}

// getRow is getJob without decoding the spec: see row.spec.
func getRow(ctx context.Context, q rowQuerier, id string) (row, error) {
	r, err := scanRow(q.QueryRowContext(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return row{}, job.ErrNotFound
	}
	return r, err
}

// addEvent records the move of j from from to j.State.
func addEvent(ctx context.Context, tx *wtx, j job.Job, from job.State, actor string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO events (job_id, at, from_state, to_state, reason, actor, attempt) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		j.ID, toDB(j.UpdatedAt), string(from), string(j.State), j.Reason, actor, j.Attempt)
	if err != nil {
		return fmt.Errorf("recording event: %w", err)
	}
	return nil
}

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
	var key any
	if j.IdempotencyKey != "" {
		key = j.IdempotencyKey
	}
	err = s.write(ctx, func(ctx context.Context, tx *wtx) error {
		if key != nil {
			// Writes are serialized, so no other enqueue of this key can
			// slip in between this look and the insert.
			r, err := scanJob(tx.QueryRowContext(ctx, `SELECT `+jobColumns+` FROM jobs WHERE idempotency_key = ?`, key))
			if err == nil {
				out = r.Job
				return nil
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		// Selecting from queues checks that the queue exists in the same round trip.
		res, err := tx.ExecContext(ctx, `INSERT INTO jobs (id, queue, state, reason, attempt, priority, image, spec, created_at, updated_at, idempotency_key)
			SELECT ?, name, ?, ?, 1, ?, ?, ?, ?, ?, ? FROM queues WHERE name = ?`,
			out.ID, string(job.Queued), out.Reason, int(out.Priority), out.Image, string(spec), toDB(t), toDB(t), key, out.Queue)
		if isUnique(err) {
			return job.ErrExists
		}
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("queue %s: %w", out.Queue, job.ErrNotFound)
		}
		if code != nil {
			if _, err := tx.ExecContext(ctx, `INSERT INTO job_code (job_id, code) VALUES (?, ?)`, out.ID, code); err != nil {
				return fmt.Errorf("storing code: %w", err)
			}
		}
		return addEvent(ctx, tx, out, "", "user")
	})
	if err != nil {
		return job.Job{}, fmt.Errorf("enqueueing job %s: %w", out.ID, err)
	}
	return out, nil
}

// GetJob returns a job with its events, oldest first.
func (s *Store) GetJob(ctx context.Context, id string) (job.Job, error) {
	// One read transaction, so that the job and its events agree.
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return job.Job{}, fmt.Errorf("getting job %s: %w", id, err)
	}
	defer func() { _ = tx.Rollback() }()
	r, err := getJob(ctx, tx, id)
	if err != nil {
		return job.Job{}, fmt.Errorf("getting job %s: %w", id, err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT seq, at, from_state, to_state, reason, actor, attempt FROM events WHERE job_id = ? ORDER BY seq`, id)
	if err != nil {
		return job.Job{}, fmt.Errorf("getting events of job %s: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		e := job.Event{JobID: id}
		var at int64
		var from, to string
		if err := rows.Scan(&e.Seq, &at, &from, &to, &e.Reason, &e.Actor, &e.Attempt); err != nil {
			return job.Job{}, fmt.Errorf("getting events of job %s: %w", id, err)
		}
		e.At, e.From, e.To = fromDB(at), job.State(from), job.State(to)
		r.Events = append(r.Events, e)
	}
	if err := rows.Err(); err != nil {
		return job.Job{}, fmt.Errorf("getting events of job %s: %w", id, err)
	}
	return r.Job, nil
}

// The indexes by queue and by state hold only the jobs no agent holds
// (unheld), and jobs_held the held ones by queue, so that a held job's
// moves change no index entry (migration 8). A job is held exactly while
// its lease_agent is not empty, so a read by queue asks each half with its
// condition, where its index serves it, and adds them up; a read by state
// asks the half its state is in.
const (
	unheld = `lease_agent = ''`
	held   = `lease_agent <> ''`
)

// countByLease is an SQL expression that counts the jobs, named alias,
// for which cond holds, as the sum of byLease's two halves.
func countByLease(cond, alias string) string {
	return `((SELECT count(*) FROM jobs ` + alias + ` WHERE ` + alias + `.` + unheld + ` AND ` + cond + `) +
	(SELECT count(*) FROM jobs ` + alias + ` WHERE ` + alias + `.` + held + ` AND ` + cond + `))`
}

// listSQL is ListJobs' query for f, and its arguments.
func listSQL(f store.JobFilter) (string, []any) {
	var (
		where []string
		args  []any
	)
	if f.Queue != "" {
		where = append(where, `queue = ?`)
		args = append(args, f.Queue)
	}
	if len(f.Queues) > 0 {
		where = append(where, `queue IN (?`+strings.Repeat(`, ?`, len(f.Queues)-1)+`)`)
		for _, name := range f.Queues {
			args = append(args, name)
		}
	}
	if f.State != "" {
		where = append(where, `state = ?`)
		args = append(args, string(f.State))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultLimit
	}
	// The held half reads jobs_held, all of it when no queue is named,
	// where a walk of the table by seq, which SQLite would pick to spare a
	// sort, could read every job. Only the held half can have jobs in a
	// held state, and only the other jobs in any other state (the store
	// keeps the two in step, and its tests check it after every
	// conformance test): a read by state asks the one half.
	cond := strings.Join(where, ` AND `)
	unheldHalf := `SELECT seq, ` + jobColumns + ` FROM jobs WHERE ` + unheld + ` AND ` + cond
	heldHalf := `SELECT seq, ` + jobColumns + ` FROM jobs INDEXED BY jobs_held WHERE ` + held + ` AND ` + cond
	var q string
	switch {
	case len(where) == 0:
		q = `SELECT seq, ` + jobColumns + ` FROM jobs ORDER BY seq DESC LIMIT ?`
	case f.State != "" && f.State.Held():
		q = heldHalf + ` ORDER BY 1 DESC LIMIT ?`
	case f.State != "":
		q = unheldHalf + ` ORDER BY 1 DESC LIMIT ?`
	default:
		q = unheldHalf + ` UNION ALL ` + heldHalf + ` ORDER BY 1 DESC LIMIT ?`
		args = append(args, args...)
	}
	args = append(args, limit)
	return q, args
}

// ListJobs returns the jobs f selects, newest first, without their events.
func (s *Store) ListJobs(ctx context.Context, f store.JobFilter) ([]job.Job, error) {
	q, args := listSQL(f)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("listing jobs: %w", err)
	}
	defer rows.Close()
	js := []job.Job{}
	sc := newRowScanner(true)
	for rows.Next() {
		r, err := sc.scan(rows)
		if err == nil {
			r, err = r.decodeSpec()
		}
		if err != nil {
			return nil, fmt.Errorf("listing jobs: %w", err)
		}
		js = append(js, r.Job)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing jobs: %w", err)
	}
	return js, nil
}

// Code returns the job's code tarball; job.ErrNotFound when it has none.
func (s *Store) Code(ctx context.Context, id string) ([]byte, error) {
	var code []byte
	err := s.r.QueryRowContext(ctx, `SELECT code FROM job_code WHERE job_id = ?`, id).Scan(&code)
	if errors.Is(err, sql.ErrNoRows) {
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
	err := s.write(ctx, func(ctx context.Context, tx *wtx) error {
		r, err := getJob(ctx, tx, id)
		if err != nil {
			return err
		}
		out = r.Job
		switch {
		case r.State == job.Queued:
			out.State, out.Reason, out.UpdatedAt = job.Canceled, reason, now()
			if _, err := tx.ExecContext(ctx, `UPDATE jobs SET state = ?, reason = ?, updated_at = ? WHERE id = ?`,
				string(out.State), out.Reason, toDB(out.UpdatedAt), id); err != nil {
				return err
			}
			return addEvent(ctx, tx, out, job.Queued, "user")
		case r.State.Held() && !r.CancelRequested:
			out.CancelRequested, out.Reason, out.UpdatedAt = true, reason, now()
			_, err := tx.ExecContext(ctx, `UPDATE jobs SET cancel_requested = 1, reason = ?, updated_at = ? WHERE id = ?`,
				out.Reason, toDB(out.UpdatedAt), id)
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
	states := store.Unfinished()
	args := make([]any, len(states))
	for i, st := range states {
		args[i] = st
	}
	in := `state IN (?` + strings.Repeat(`, ?`, len(states)-1) + `)`
	rows, err := s.r.QueryContext(ctx, `SELECT queue, state, count(*) FROM jobs WHERE `+unheld+` AND `+in+` GROUP BY queue, state
	UNION ALL SELECT queue, state, count(*) FROM jobs WHERE `+held+` AND `+in+` GROUP BY queue, state`, append(args, args...)...)
	if err != nil {
		return nil, fmt.Errorf("counting jobs: %w", err)
	}
	defer rows.Close()
	counts := map[string]map[job.State]int{}
	for rows.Next() {
		var queue, state string
		var n int
		if err := rows.Scan(&queue, &state, &n); err != nil {
			return nil, fmt.Errorf("counting jobs: %w", err)
		}
		store.AddCount(counts, queue, job.State(state), n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("counting jobs: %w", err)
	}
	return counts, nil
}

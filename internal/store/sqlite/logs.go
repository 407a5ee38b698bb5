package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
)

// AppendLogs adds lines to the job's current attempt, numbering them after
// every line stored before; job.ErrLeaseLost unless token is the job's
// current, held lease, held by holder. A line without a time gets now, without a stream
// "stdout".
func (s *Store) AppendLogs(ctx context.Context, id string, token int64, holder store.Holder, lines []job.LogLine) error {
	err := s.write(ctx, func(ctx context.Context, tx *wtx) error {
		r, err := heldJob(ctx, tx, id, token, holder)
		if err != nil {
			return err
		}
		if len(lines) == 0 {
			return nil
		}
		t := now()
		for _, l := range lines {
			at, stream := l.At, l.Stream
			if at.IsZero() {
				at = t
			}
			if stream == "" {
				stream = "stdout"
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO logs (job_id, attempt, at, stream, text) VALUES (?, ?, ?, ?, ?)`,
				id, r.Attempt, toDB(at), stream, l.Text); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("appending logs of job %s: %w", id, err)
	}
	return nil
}

// ReadLogs returns up to limit lines (1000 when limit is 0) with Seq > after,
// in order, of one attempt, or of every attempt when attempt is 0.
// job.ErrNotFound when there is no such job.
func (s *Store) ReadLogs(ctx context.Context, id string, attempt int, after int64, limit int) ([]job.LogLine, error) {
	if limit <= 0 {
		limit = defaultLimit
	}
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("reading logs of job %s: %w", id, err)
	}
	defer func() { _ = tx.Rollback() }()
	var exists bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM jobs WHERE id = ?)`, id).Scan(&exists); err != nil {
		return nil, fmt.Errorf("reading logs of job %s: %w", id, err)
	}
	if !exists {
		return nil, fmt.Errorf("reading logs of job %s: %w", id, job.ErrNotFound)
	}
	rows, err := tx.QueryContext(ctx, `SELECT seq, attempt, at, stream, text FROM logs
		WHERE job_id = ? AND seq > ? AND (? = 0 OR attempt = ?) ORDER BY seq LIMIT ?`, id, after, attempt, attempt, limit)
	if err != nil {
		return nil, fmt.Errorf("reading logs of job %s: %w", id, err)
	}
	defer rows.Close()
	lines := []job.LogLine{}
	for rows.Next() {
		var l job.LogLine
		var at int64
		if err := rows.Scan(&l.Seq, &l.Attempt, &at, &l.Stream, &l.Text); err != nil {
			return nil, fmt.Errorf("reading logs of job %s: %w", id, err)
		}
		l.At = fromDB(at)
		lines = append(lines, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading logs of job %s: %w", id, err)
	}
	return lines, nil
}

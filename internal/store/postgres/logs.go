package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
)

// AppendLogs adds lines to the job's current attempt, numbering them after
// every line stored before; job.ErrLeaseLost unless token is the job's
// current, held lease, held by holder. A line without a time gets now, without a stream
// "stdout".
//
// The job's row stays locked until the lines are committed, so that the
// lines of one job are numbered in the order they become visible: a reader
// that follows them with Seq > after misses none.
func (s *Store) AppendLogs(ctx context.Context, id string, token int64, holder store.Holder, lines []job.LogLine) error {
	t := now()
	ats, streams, texts := make([]time.Time, len(lines)), make([]string, len(lines)), make([]string, len(lines))
	for i, l := range lines {
		ats[i], streams[i], texts[i] = toDB(l.At), clean(l.Stream), clean(l.Text)
		if l.At.IsZero() {
			ats[i] = t
		}
		if l.Stream == "" {
			streams[i] = "stdout"
		}
	}
	err := s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		r, err := heldJob(ctx, tx, id, token, holder)
		if err != nil {
			return err
		}
		if len(lines) == 0 {
			return nil
		}
		_, err = tx.Exec(ctx, `INSERT INTO logs (job_id, attempt, at, stream, text)
			SELECT $1, $2, l.at, l.stream, l.text
			FROM unnest($3::timestamptz[], $4::text[], $5::text[]) WITH ORDINALITY AS l(at, stream, text, n)
			ORDER BY l.n`, id, r.Attempt, ats, streams, texts)
		return err
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
	var lines []job.LogLine
	err := s.retry(ctx, true, func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, `SELECT seq, attempt, at, stream, text FROM logs
			WHERE job_id = $1 AND seq > $2 AND ($3 = 0 OR attempt = $3) ORDER BY seq LIMIT $4`, id, after, attempt, limit)
		if err != nil {
			return err
		}
		lines, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (job.LogLine, error) {
			var l job.LogLine
			err := r.Scan(&l.Seq, &l.Attempt, &l.At, &l.Stream, &l.Text)
			l.At = l.At.UTC()
			return l, err
		})
		if err != nil || len(lines) > 0 {
			return err
		}
		// No lines: tell a job without logs from no job.
		var exists bool
		if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM jobs WHERE id = $1)`, id).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return job.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading logs of job %s: %w", id, err)
	}
	if lines == nil {
		lines = []job.LogLine{}
	}
	return lines, nil
}

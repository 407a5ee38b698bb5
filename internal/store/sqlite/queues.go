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

// unfinishedStates is the SQL list of every state that is not terminal.
var unfinishedStates = func() string {
	var b []string
	for _, s := range job.States {
		if !s.Terminal() {
			b = append(b, "'"+string(s)+"'")
		}
	}
	return "(" + strings.Join(b, ", ") + ")"
}()

// unfinishedCount counts the unfinished jobs of queue q.
var unfinishedCount = countByLease(`j.queue = q.name AND j.state IN `+unfinishedStates, "j")

var selectQueue = `SELECT q.name, q.resource, q.config, q.vars, q.max_running, q.policy, q.created_at, q.updated_at, ` +
	unfinishedCount + ` FROM queues q`

type scanner interface{ Scan(dest ...any) error }

func scanQueue(row scanner) (job.Queue, error) {
	var (
		q                job.Queue
		config, policy   sql.NullString
		created, updated int64
		resource, vars   string
	)
	if err := row.Scan(&q.Name, &resource, &config, &vars, &q.MaxRunning, &policy, &created, &updated, &q.Unfinished); err != nil {
		return job.Queue{}, err
	}
	if err := json.Unmarshal([]byte(vars), &q.Vars); err != nil {
		return job.Queue{}, fmt.Errorf("queue %s: reading vars: %w", q.Name, err)
	}
	if policy.Valid {
		if err := json.Unmarshal([]byte(policy.String), &q.Policy); err != nil {
			return job.Queue{}, fmt.Errorf("queue %s: reading policy: %w", q.Name, err)
		}
	}
	q.Resource = job.Resource(resource)
	if config.Valid {
		q.Config = json.RawMessage(config.String)
	}
	q.CreatedAt, q.UpdatedAt = fromDB(created), fromDB(updated)
	return q, nil
}

// policyJSON stores no policy, or one that allows everything, as NULL.
func policyJSON(p *job.Policy) any {
	if p.IsZero() {
		return nil
	}
	b, _ := json.Marshal(p) // a Policy always encodes
	return string(b)
}

// nullJSON stores an absent config as NULL.
func nullJSON(b json.RawMessage) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

// varsJSON stores a queue's variable declarations as a JSON array.
func varsJSON(vars []string) string {
	if len(vars) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(vars) // a []string always encodes
	return string(b)
}

// CreateQueue adds q; job.ErrExists when the name is taken.
func (s *Store) CreateQueue(ctx context.Context, q job.Queue) (job.Queue, error) {
	if err := store.ValidateQueue(q); err != nil {
		return job.Queue{}, err
	}
	t := now()
	err := s.write(ctx, func(ctx context.Context, tx *wtx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO queues (name, resource, config, vars, max_running, policy, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			q.Name, string(q.Resource), nullJSON(q.Config), varsJSON(q.Vars), q.MaxRunning, policyJSON(q.Policy), toDB(t), toDB(t))
		return err
	})
	if isUnique(err) {
		return job.Queue{}, fmt.Errorf("creating queue %s: %w", q.Name, job.ErrExists)
	}
	if err != nil {
		return job.Queue{}, fmt.Errorf("creating queue %s: %w", q.Name, err)
	}
	q.Unfinished, q.CreatedAt, q.UpdatedAt = 0, t, t
	if q.Policy.IsZero() {
		q.Policy = nil
	}
	return q, nil
}

// UpdateQueue replaces the queue's config; job.ErrNotFound when missing.
func (s *Store) UpdateQueue(ctx context.Context, q job.Queue) (job.Queue, error) {
	if err := store.ValidateQueueSettings(q); err != nil {
		return job.Queue{}, err
	}
	var out job.Queue
	err := s.write(ctx, func(ctx context.Context, tx *wtx) error {
		res, err := tx.ExecContext(ctx, `UPDATE queues SET config = ?, vars = ?, max_running = ?, policy = ?, updated_at = ? WHERE name = ?`,
			nullJSON(q.Config), varsJSON(q.Vars), q.MaxRunning, policyJSON(q.Policy), toDB(now()), q.Name)
		if err != nil {
			return err
		}
		if err := mustAffect(res); err != nil {
			return err
		}
		out, err = scanQueue(tx.QueryRowContext(ctx, selectQueue+` WHERE q.name = ?`, q.Name))
		return err
	})
	if err != nil {
		return job.Queue{}, fmt.Errorf("updating queue %s: %w", q.Name, err)
	}
	return out, nil
}

// GetQueue returns the named queue; job.ErrNotFound when missing.
func (s *Store) GetQueue(ctx context.Context, name string) (job.Queue, error) {
	q, err := scanQueue(s.r.QueryRowContext(ctx, selectQueue+` WHERE q.name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		err = job.ErrNotFound
	}
	if err != nil {
		return job.Queue{}, fmt.Errorf("getting queue %s: %w", name, err)
	}
	return q, nil
}

// ListQueues returns every queue by name.
func (s *Store) ListQueues(ctx context.Context) ([]job.Queue, error) {
	rows, err := s.r.QueryContext(ctx, selectQueue+` ORDER BY q.name`)
	if err != nil {
		return nil, fmt.Errorf("listing queues: %w", err)
	}
	defer rows.Close()
	qs := []job.Queue{}
	for rows.Next() {
		q, err := scanQueue(rows)
		if err != nil {
			return nil, fmt.Errorf("listing queues: %w", err)
		}
		qs = append(qs, q)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing queues: %w", err)
	}
	return qs, nil
}

// DeleteQueue removes a queue whose jobs have all ended, with those jobs;
// job.ErrConflict while it holds unfinished jobs.
func (s *Store) DeleteQueue(ctx context.Context, name string) error {
	err := s.write(ctx, func(ctx context.Context, tx *wtx) error {
		var exists bool
		var unfinished int
		err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM queues WHERE name = ?1),
			(SELECT `+unfinishedCount+` FROM (SELECT ?1 AS name) q)`, name).Scan(&exists, &unfinished)
		switch {
		case err != nil:
			return err
		case !exists:
			return job.ErrNotFound
		case unfinished > 0:
			return fmt.Errorf("%w: %d unfinished jobs", job.ErrConflict, unfinished)
		}
		for _, half := range []string{unheld, held} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM jobs WHERE queue = ? AND `+half, name); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM queues WHERE name = ?`, name)
		return err
	})
	if err != nil {
		return fmt.Errorf("deleting queue %s: %w", name, err)
	}
	return nil
}

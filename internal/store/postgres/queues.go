package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

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

var selectQueue = `SELECT q.name, q.resource, q.config, q.vars, q.max_running, q.policy, q.created_at, q.updated_at,
	(SELECT count(*) FROM jobs j WHERE j.queue = q.name AND j.state IN ` + unfinishedStates + `)
FROM queues q`

func scanQueue(row scanner) (job.Queue, error) {
	var (
		q                job.Queue
		config, policy   *string
		created, updated time.Time
		resource         string
	)
	if err := row.Scan(&q.Name, &resource, &config, &q.Vars, &q.MaxRunning, &policy, &created, &updated, &q.Unfinished); err != nil {
		return job.Queue{}, err
	}
	if policy != nil {
		if err := json.Unmarshal([]byte(*policy), &q.Policy); err != nil {
			return job.Queue{}, fmt.Errorf("queue %s: reading policy: %w", q.Name, err)
		}
	}
	q.Resource = job.Resource(resource)
	if config != nil {
		q.Config = json.RawMessage(*config)
	}
	q.CreatedAt, q.UpdatedAt = created.UTC(), updated.UTC()
	return q, nil
}

// policyJSON stores no policy, or one that allows everything, as NULL.
func policyJSON(p *job.Policy) *string {
	if p.IsZero() {
		return nil
	}
	b, _ := json.Marshal(p) // a Policy always encodes
	s := clean(string(b))
	return &s
}

// nullJSON stores an absent config as NULL.
func nullJSON(b json.RawMessage) *string {
	if len(b) == 0 {
		return nil
	}
	s := string(b)
	return &s
}

// vars stores no declarations as an empty array, not NULL.
func vars(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}

// CreateQueue adds q; job.ErrExists when the name is taken.
func (s *Store) CreateQueue(ctx context.Context, q job.Queue) (job.Queue, error) {
	if err := store.ValidateQueue(q); err != nil {
		return job.Queue{}, err
	}
	t := now()
	err := s.retry(ctx, false, func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, `INSERT INTO queues (name, resource, config, vars, max_running, policy, created_at, updated_at) VALUES ($1, $2, $3, $4, $6, $7, $5, $5)`,
			q.Name, string(q.Resource), nullJSON(q.Config), vars(q.Vars), t, q.MaxRunning, policyJSON(q.Policy))
		return err
	})
	if pgCode(err) == uniqueViolation {
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

// UpdateQueue replaces the queue's config and vars; job.ErrNotFound when missing.
func (s *Store) UpdateQueue(ctx context.Context, q job.Queue) (job.Queue, error) {
	if err := store.ValidateQueueSettings(q); err != nil {
		return job.Queue{}, err
	}
	var out job.Queue
	// Setting the same config again is harmless: it may be retried.
	err := s.retry(ctx, true, func(ctx context.Context) error {
		var err error
		out, err = scanQueue(s.pool.QueryRow(ctx, `WITH u AS (UPDATE queues SET config = $1, vars = $2, max_running = $5, policy = $6, updated_at = $3 WHERE name = $4 RETURNING *)
			SELECT u.name, u.resource, u.config, u.vars, u.max_running, u.policy, u.created_at, u.updated_at,
				(SELECT count(*) FROM jobs j WHERE j.queue = u.name AND j.state IN `+unfinishedStates+`)
			FROM u`, nullJSON(q.Config), vars(q.Vars), now(), q.Name, q.MaxRunning, policyJSON(q.Policy)))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		err = job.ErrNotFound
	}
	if err != nil {
		return job.Queue{}, fmt.Errorf("updating queue %s: %w", q.Name, err)
	}
	return out, nil
}

// GetQueue returns the named queue; job.ErrNotFound when missing.
func (s *Store) GetQueue(ctx context.Context, name string) (job.Queue, error) {
	var q job.Queue
	err := s.retry(ctx, true, func(ctx context.Context) error {
		var err error
		q, err = scanQueue(s.pool.QueryRow(ctx, selectQueue+` WHERE q.name = $1`, name))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		err = job.ErrNotFound
	}
	if err != nil {
		return job.Queue{}, fmt.Errorf("getting queue %s: %w", name, err)
	}
	return q, nil
}

// ListQueues returns every queue by name.
func (s *Store) ListQueues(ctx context.Context) ([]job.Queue, error) {
	var qs []job.Queue
	err := s.retry(ctx, true, func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, selectQueue+` ORDER BY q.name`)
		if err != nil {
			return err
		}
		qs, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (job.Queue, error) { return scanQueue(r) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listing queues: %w", err)
	}
	if qs == nil {
		qs = []job.Queue{}
	}
	return qs, nil
}

// DeleteQueue removes a queue whose jobs have all ended, with those jobs;
// job.ErrConflict while it holds unfinished jobs.
func (s *Store) DeleteQueue(ctx context.Context, name string) error {
	err := s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		// Locking the queue's row holds off enqueues into it, whose foreign
		// key check needs a share lock on it, until this commits.
		var found string
		err := tx.QueryRow(ctx, `SELECT name FROM queues WHERE name = $1 FOR UPDATE`, name).Scan(&found)
		if errors.Is(err, pgx.ErrNoRows) {
			return job.ErrNotFound
		}
		if err != nil {
			return err
		}
		// Locking the jobs too keeps a concurrent Requeue from bringing one
		// back to life between this count and the delete.
		var unfinished int
		if err := tx.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state IN `+unfinishedStates+`)
			FROM (SELECT state FROM jobs WHERE queue = $1 FOR UPDATE) j`, name).Scan(&unfinished); err != nil {
			return err
		}
		if unfinished > 0 {
			return fmt.Errorf("%w: %d unfinished jobs", job.ErrConflict, unfinished)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM jobs WHERE queue = $1`, name); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM queues WHERE name = $1`, name)
		return err
	})
	if err != nil {
		return fmt.Errorf("deleting queue %s: %w", name, err)
	}
	return nil
}

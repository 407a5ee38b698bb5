package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/slipway-ml/slipway/internal/job"
)

// RegisterAgent adds or replaces the agent with a.ID, seen now; Started
// defaults to now.
func (s *Store) RegisterAgent(ctx context.Context, a job.Agent) (job.Agent, error) {
	if a.ID == "" {
		return job.Agent{}, fmt.Errorf("%w: registering an agent: id is empty", job.ErrInvalid)
	}
	if a.Queues == nil {
		a.Queues = []string{}
	}
	t := now()
	a.LastSeen = t
	if a.Started.IsZero() {
		a.Started = t
	}
	a.Started = toDB(a.Started)
	// Replacing an agent with the same values again is harmless.
	err := s.retry(ctx, true, func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, `INSERT INTO agents (id, name, queues, max_jobs, started_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (id) DO UPDATE SET name = excluded.name, queues = excluded.queues, max_jobs = excluded.max_jobs,
			started_at = excluded.started_at, last_seen_at = excluded.last_seen_at`,
			a.ID, a.Name, a.Queues, a.MaxJobs, a.Started, a.LastSeen)
		return err
	})
	if err != nil {
		return job.Agent{}, fmt.Errorf("registering agent %s: %w", a.ID, err)
	}
	return a, nil
}

// TouchAgent records that the agent was seen now; job.ErrNotFound when it
// is not registered.
func (s *Store) TouchAgent(ctx context.Context, id string) error {
	err := s.retry(ctx, true, func(ctx context.Context) error {
		tag, err := s.pool.Exec(ctx, `UPDATE agents SET last_seen_at = $1 WHERE id = $2`, now(), id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return job.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("touching agent %s: %w", id, err)
	}
	return nil
}

// ListAgents returns every registered agent by id.
func (s *Store) ListAgents(ctx context.Context) ([]job.Agent, error) {
	var as []job.Agent
	err := s.retry(ctx, true, func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, `SELECT id, name, queues, max_jobs, started_at, last_seen_at FROM agents ORDER BY id`)
		if err != nil {
			return err
		}
		as, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (job.Agent, error) {
			var a job.Agent
			var started, seen time.Time
			err := r.Scan(&a.ID, &a.Name, &a.Queues, &a.MaxJobs, &started, &seen)
			a.Started, a.LastSeen = started.UTC(), seen.UTC()
			if a.Queues == nil {
				a.Queues = []string{}
			}
			return a, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listing agents: %w", err)
	}
	if as == nil {
		as = []job.Agent{}
	}
	return as, nil
}

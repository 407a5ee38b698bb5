package sqlite

import (
	"context"
	"encoding/json"
	"fmt"

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
	queues, err := json.Marshal(a.Queues)
	if err != nil {
		return job.Agent{}, fmt.Errorf("registering agent %s: %w", a.ID, err)
	}
	t := now()
	a.LastSeen = t
	if a.Started.IsZero() {
		a.Started = t
	}
	a.Started = fromDB(toDB(a.Started))
	err = s.write(ctx, func(ctx context.Context, tx *wtx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO agents (id, name, queues, max_jobs, started_at, last_seen_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET name = excluded.name, queues = excluded.queues, max_jobs = excluded.max_jobs,
			started_at = excluded.started_at, last_seen_at = excluded.last_seen_at`,
			a.ID, a.Name, string(queues), a.MaxJobs, toDB(a.Started), toDB(a.LastSeen))
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
	err := s.write(ctx, func(ctx context.Context, tx *wtx) error {
		res, err := tx.ExecContext(ctx, `UPDATE agents SET last_seen_at = ? WHERE id = ?`, toDB(now()), id)
		if err != nil {
			return err
		}
		return mustAffect(res)
	})
	if err != nil {
		return fmt.Errorf("touching agent %s: %w", id, err)
	}
	return nil
}

// ListAgents returns every registered agent by id.
func (s *Store) ListAgents(ctx context.Context) ([]job.Agent, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, name, queues, max_jobs, started_at, last_seen_at FROM agents ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("listing agents: %w", err)
	}
	defer rows.Close()
	as := []job.Agent{}
	for rows.Next() {
		var a job.Agent
		var queues string
		var started, seen int64
		if err := rows.Scan(&a.ID, &a.Name, &queues, &a.MaxJobs, &started, &seen); err != nil {
			return nil, fmt.Errorf("listing agents: %w", err)
		}
		if err := json.Unmarshal([]byte(queues), &a.Queues); err != nil {
			return nil, fmt.Errorf("listing agents: decoding the queues of %s: %w", a.ID, err)
		}
		a.Started, a.LastSeen = fromDB(started), fromDB(seen)
		as = append(as, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing agents: %w", err)
	}
	return as, nil
}

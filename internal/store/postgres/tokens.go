package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/slipway-ml/slipway/internal/job"
)

const selectToken = `SELECT id, name, role, queues, hash, created_at FROM tokens`

func scanToken(row scanner) (job.Token, error) {
	var (
		t       job.Token
		role    string
		created time.Time
	)
	if err := row.Scan(&t.ID, &t.Name, &role, &t.Queues, &t.Hash, &created); err != nil {
		return job.Token{}, err
	}
	if len(t.Queues) == 0 {
		t.Queues = nil
	}
	t.Role, t.CreatedAt = job.Role(role), created.UTC()
	return t, nil
}

// CreateToken stores t; job.ErrExists when its id is taken.
func (s *Store) CreateToken(ctx context.Context, t job.Token) (job.Token, error) {
	if err := t.Validate(); err != nil {
		return job.Token{}, err
	}
	t.CreatedAt = now()
	err := s.retry(ctx, false, func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, `INSERT INTO tokens (id, name, role, queues, hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
			t.ID, clean(t.Name), string(t.Role), vars(t.Queues), t.Hash, t.CreatedAt)
		return err
	})
	if pgCode(err) == uniqueViolation {
		return job.Token{}, fmt.Errorf("creating token %s: %w", t.ID, job.ErrExists)
	}
	if err != nil {
		return job.Token{}, fmt.Errorf("creating token %s: %w", t.ID, err)
	}
	t.Name = clean(t.Name)
	return t, nil
}

// GetToken returns the token with id, its hash included.
func (s *Store) GetToken(ctx context.Context, id string) (job.Token, error) {
	var t job.Token
	err := s.retry(ctx, true, func(ctx context.Context) error {
		var err error
		t, err = scanToken(s.pool.QueryRow(ctx, selectToken+` WHERE id = $1`, id))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		err = job.ErrNotFound
	}
	if err != nil {
		return job.Token{}, fmt.Errorf("getting token %s: %w", id, err)
	}
	return t, nil
}

// ListTokens returns every token, oldest first, without hashes.
func (s *Store) ListTokens(ctx context.Context) ([]job.Token, error) {
	var ts []job.Token
	err := s.retry(ctx, true, func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, selectToken+` ORDER BY created_at, id`)
		if err != nil {
			return err
		}
		ts, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (job.Token, error) {
			t, err := scanToken(r)
			t.Hash = ""
			return t, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listing tokens: %w", err)
	}
	if ts == nil {
		ts = []job.Token{}
	}
	return ts, nil
}

// RevokeToken deletes a token; job.ErrNotFound when there is none.
func (s *Store) RevokeToken(ctx context.Context, id string) error {
	var n int64
	err := s.retry(ctx, true, func(ctx context.Context) error {
		tag, err := s.pool.Exec(ctx, `DELETE FROM tokens WHERE id = $1`, id)
		n = tag.RowsAffected()
		return err
	})
	if err == nil && n == 0 {
		err = job.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("revoking token %s: %w", id, err)
	}
	return nil
}

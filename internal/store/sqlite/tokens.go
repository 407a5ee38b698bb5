package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/slipway-ml/slipway/internal/job"
)

const selectToken = `SELECT id, name, role, queues, hash, created_at FROM tokens`

func scanToken(row scanner) (job.Token, error) {
	var (
		t       job.Token
		role    string
		queues  string
		created int64
	)
	if err := row.Scan(&t.ID, &t.Name, &role, &queues, &t.Hash, &created); err != nil {
		return job.Token{}, err
	}
	if err := json.Unmarshal([]byte(queues), &t.Queues); err != nil {
		return job.Token{}, fmt.Errorf("token %s: reading queues: %w", t.ID, err)
	}
	t.Role, t.CreatedAt = job.Role(role), fromDB(created)
	return t, nil
}

// CreateToken stores t; job.ErrExists when its id is taken.
func (s *Store) CreateToken(ctx context.Context, t job.Token) (job.Token, error) {
	if err := t.Validate(); err != nil {
		return job.Token{}, err
	}
	t.CreatedAt = now()
	err := s.write(ctx, func(ctx context.Context, tx *wtx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO tokens (id, name, role, queues, hash, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			t.ID, t.Name, string(t.Role), varsJSON(t.Queues), t.Hash, toDB(t.CreatedAt))
		return err
	})
	if isUnique(err) {
		return job.Token{}, fmt.Errorf("creating token %s: %w", t.ID, job.ErrExists)
	}
	if err != nil {
		return job.Token{}, fmt.Errorf("creating token %s: %w", t.ID, err)
	}
	return t, nil
}

// GetToken returns the token with id, its hash included.
func (s *Store) GetToken(ctx context.Context, id string) (job.Token, error) {
	t, err := scanToken(s.r.QueryRowContext(ctx, selectToken+` WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		err = job.ErrNotFound
	}
	if err != nil {
		return job.Token{}, fmt.Errorf("getting token %s: %w", id, err)
	}
	return t, nil
}

// ListTokens returns every token, oldest first, without hashes.
func (s *Store) ListTokens(ctx context.Context) ([]job.Token, error) {
	rows, err := s.r.QueryContext(ctx, selectToken+` ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("listing tokens: %w", err)
	}
	defer rows.Close()
	ts := []job.Token{}
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("listing tokens: %w", err)
		}
		t.Hash = ""
		ts = append(ts, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing tokens: %w", err)
	}
	return ts, nil
}

// RevokeToken deletes a token; job.ErrNotFound when there is none.
func (s *Store) RevokeToken(ctx context.Context, id string) error {
	err := s.write(ctx, func(ctx context.Context, tx *wtx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM tokens WHERE id = ?`, id)
		if err != nil {
			return err
		}
		return mustAffect(res)
	})
	if err != nil {
		return fmt.Errorf("revoking token %s: %w", id, err)
	}
	return nil
}

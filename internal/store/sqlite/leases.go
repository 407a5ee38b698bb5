package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
)

// claimSQL takes the next queued job of one queue in one statement; the
// jobs_claim index serves the inner SELECT without a sort.
var claimSQL = `UPDATE jobs SET state = ?, reason = ?, lease_agent = ?, lease_token = lease_token + 1,
	lease_expires_at = ?, updated_at = ?, lease_token_id = ?
WHERE seq = (SELECT seq FROM jobs WHERE queue = ? AND state = 'queued' ORDER BY priority DESC, seq LIMIT 1)
RETURNING ` + jobColumns

// claimCappedSQL is claimSQL for a queue with a max_running: it takes no
// job when the queue already holds that many. Writes are serialized, so
// the count of held jobs cannot change between the check and the update.
// Counting them costs a read of every held job of the queue, which
// claimSQL spares the queues without a cap.
var claimCappedSQL = `UPDATE jobs SET state = ?, reason = ?, lease_agent = ?, lease_token = lease_token + 1,
	lease_expires_at = ?, updated_at = ?, lease_token_id = ?
WHERE seq = (SELECT seq FROM jobs WHERE queue = ? AND state = 'queued' ORDER BY priority DESC, seq LIMIT 1)
AND (SELECT q.max_running > (SELECT count(*) FROM jobs h WHERE h.queue = q.name AND h.state IN ` + heldStates + `)
	FROM queues q WHERE q.name = ?)
RETURNING ` + jobColumns

// heldStates is the SQL list of the states in which an agent holds a job:
// what a queue's max_running counts.
var heldStates = func() string {
	var b []string
	for _, s := range job.States {
		if s.Held() {
			b = append(b, "'"+string(s)+"'")
		}
	}
	return "(" + strings.Join(b, ", ") + ")"
}()

// Claim takes the first queued job of the highest priority in the first of
// req.Queues that has one, oldest first, bumps its lease token and moves it
// to claimed; job.ErrNoJob when every queue is empty.
func (s *Store) Claim(ctx context.Context, req store.ClaimRequest) (job.Job, error) {
	js, err := s.ClaimN(ctx, req, 1)
	if err != nil {
		return job.Job{}, err
	}
	return js[0], nil
}

// ClaimN takes up to n jobs, one per queue per pass over req.Queues, in
// one transaction: one commit for them all.
func (s *Store) ClaimN(ctx context.Context, req store.ClaimRequest, n int) ([]job.Job, error) {
	if err := store.ValidateClaim(req, n); err != nil {
		return nil, err
	}
	var rows []row
	err := s.write(ctx, func(ctx context.Context, tx *wtx) error {
		rows = rows[:0]
		t := now()
		reason := "claimed by agent " + req.Agent
		queues := slices.Clone(req.Queues) // those that may still yield a job
		capped := make(map[string]bool, len(queues))
		for _, q := range queues {
			var limit int
			err := tx.QueryRowContext(ctx, `SELECT max_running FROM queues WHERE name = ?`, q).Scan(&limit)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			capped[q] = limit > 0
		}
		for len(rows) < n && len(queues) > 0 {
			for i := 0; i < len(queues) && len(rows) < n; {
				q := queues[i]
				query, args := claimSQL, []any{string(job.Claimed), reason, req.Agent, toDB(t.Add(req.TTL)), toDB(t), req.TokenID, q}
				if capped[q] {
					query, args = claimCappedSQL, append(args, q)
				}
				r, err := scanRow(tx.QueryRowContext(ctx, query, args...))
				if errors.Is(err, sql.ErrNoRows) {
					queues = slices.Delete(queues, i, i+1) // empty, or at its cap
					continue
				}
				if err != nil {
					return err
				}
				if err := addEvent(ctx, tx, r.Job, job.Queued, req.Agent); err != nil {
					return err
				}
				rows = append(rows, r)
				i++
			}
		}
		if len(rows) == 0 {
			return job.ErrNoJob
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claiming jobs for agent %s: %w", req.Agent, err)
	}
	out := make([]job.Job, len(rows))
	for i, r := range rows {
		if r, err = r.decodeSpec(); err != nil {
			return nil, fmt.Errorf("claiming jobs for agent %s: %w", req.Agent, err)
		}
		out[i] = r.Job
	}
	return out, nil
}

// heldJob reads job id in tx and checks that it is in holder's queues
// (job.ErrForbidden otherwise), and that token is its current, held lease,
// held by holder (job.ErrLeaseLost otherwise).
func heldJob(ctx context.Context, tx *wtx, id string, token int64, holder store.Holder) (row, error) {
	r, err := getRow(ctx, tx, id)
	if err != nil {
		return row{}, err
	}
	if err := store.CheckQueue(r.Queue, holder); err != nil {
		return row{}, err
	}
	if r.Lease == nil || r.token != token {
		return row{}, fmt.Errorf("token %d: %w", token, job.ErrLeaseLost)
	}
	if err := store.CheckHolder(r.Lease, holder); err != nil {
		return row{}, err
	}
	return r, nil
}

// Renew extends the lease by ttl from now; job.ErrForbidden for a job
// outside holder's queues, job.ErrLeaseLost when token is stale, the lease
// was taken away, or it is not held by holder.
func (s *Store) Renew(ctx context.Context, id string, token int64, holder store.Holder, ttl time.Duration) (job.Job, error) {
	if ttl <= 0 {
		return job.Job{}, fmt.Errorf("%w: renewing job %s: lease ttl %v: want > 0", job.ErrInvalid, id, ttl)
	}
	var out row
	err := s.write(ctx, func(ctx context.Context, tx *wtx) error {
		r, err := heldJob(ctx, tx, id, token, holder)
		if err != nil {
			return err
		}
		t := now()
		r.Lease.ExpiresAt = t.Add(ttl)
		_, err = tx.ExecContext(ctx, `UPDATE jobs SET lease_expires_at = ? WHERE id = ?`, toDB(r.Lease.ExpiresAt), id)
		out = r
		return err
	})
	if err == nil {
		out, err = out.decodeSpec()
	}
	if err != nil {
		return job.Job{}, fmt.Errorf("renewing the lease of job %s: %w", id, err)
	}
	return out.Job, nil
}

// Transition applies u; job.ErrForbidden for a job outside u.Holder's
// queues, job.ErrLeaseLost for a stale token, a released lease or one not
// held by u.Holder, job.ErrConflict for a move the
// lifecycle does not allow. Moving to a terminal state or back to queued
// releases the lease.
func (s *Store) Transition(ctx context.Context, u store.Update) (job.Job, error) {
	ms, err := s.Transitions(ctx, []store.Update{u})
	if err != nil {
		return job.Job{}, err
	}
	return ms[0].Job, ms[0].Err
}

// Transitions applies each of us as Transition does, all in one
// transaction of the writer, each in its own savepoint: one commit for
// them all, and a refused update undone alone.
func (s *Store) Transitions(ctx context.Context, us []store.Update) ([]store.Moved, error) {
	if err := store.ValidateTransitions(us); err != nil {
		return nil, err
	}
	out := make([]store.Moved, len(us))
	specs := make([]string, len(us)) // decoded after the write, outside the writer
	fns := make([]func(context.Context, *wtx) error, 0, len(us))
	idx := make([]int, 0, len(us)) // fns[k] applies us[idx[k]]
	for i, u := range us {
		if _, err := job.ParseState(string(u.To)); err != nil {
			out[i].Err = fmt.Errorf("moving job %s: %w", u.JobID, err)
			continue
		}
		idx = append(idx, i)
		fns = append(fns, func(ctx context.Context, tx *wtx) error {
			var err error
			out[i].Job, specs[i], err = transition(ctx, tx, u)
			return err
		})
	}
	if len(fns) > 0 {
		errs := s.writeEach(ctx, fns...)
		for k, err := range errs {
			i := idx[k]
			if err == nil {
				var r row
				r, err = row{Job: out[i].Job, spec: specs[i]}.decodeSpec()
				out[i].Job = r.Job
			}
			if err != nil {
				out[i] = store.Moved{Err: fmt.Errorf("moving job %s to %s: %w", us[i].JobID, us[i].To, err)}
			}
		}
	}
	return out, nil
}

// transition applies u in tx and returns the job as it leaves it, with
// its spec still encoded (see row.spec).
func transition(ctx context.Context, tx *wtx, u store.Update) (job.Job, string, error) {
	r, err := heldJob(ctx, tx, u.JobID, u.Token, u.Holder)
	if err != nil {
		return job.Job{}, "", err
	}
	from := r.State
	out, actor, err := store.Apply(r.Job, u, now())
	if err != nil {
		return job.Job{}, "", err
	}
	outputs, err := json.Marshal(out.Outputs)
	if err != nil || out.Outputs == nil {
		outputs = []byte("{}")
	}
	if out.Lease != nil {
		// Still held: the lease columns stay as they are, and naming them
		// would rewrite the jobs_lease index entry for nothing.
		_, err = tx.ExecContext(ctx, `UPDATE jobs SET state = ?, reason = ?, external_id = ?, image = ?, outputs = ?, updated_at = ? WHERE id = ?`,
			string(out.State), out.Reason, out.ExternalID, out.Image, string(outputs), toDB(out.UpdatedAt), out.ID)
	} else {
		_, err = tx.ExecContext(ctx, `UPDATE jobs SET state = ?, reason = ?, external_id = ?, image = ?, outputs = ?,
			lease_agent = '', lease_expires_at = 0, lease_token_id = '', updated_at = ? WHERE id = ?`,
			string(out.State), out.Reason, out.ExternalID, out.Image, string(outputs), toDB(out.UpdatedAt), out.ID)
	}
	if err != nil {
		return job.Job{}, "", err
	}
	return out, r.spec, addEvent(ctx, tx, out, from, actor)
}

// Requeue starts a new attempt of a failed or preempted job, without its
// external id and any cancel request; job.ErrConflict for any other state.
func (s *Store) Requeue(ctx context.Context, id, reason string) (job.Job, error) {
	var out job.Job
	err := s.write(ctx, func(ctx context.Context, tx *wtx) error {
		r, err := getJob(ctx, tx, id)
		if err != nil {
			return err
		}
		from := r.State
		if from != job.Failed && from != job.Preempted {
			return fmt.Errorf("%w: a %s job cannot be queued again", job.ErrConflict, from)
		}
		out = r.Job
		out.State, out.Reason, out.Attempt, out.ExternalID, out.CancelRequested, out.UpdatedAt =
			job.Queued, reason, r.Attempt+1, "", false, now()
		if _, err := tx.ExecContext(ctx, `UPDATE jobs SET state = ?, reason = ?, attempt = ?, external_id = '',
			cancel_requested = 0, updated_at = ? WHERE id = ?`,
			string(out.State), out.Reason, out.Attempt, toDB(out.UpdatedAt), id); err != nil {
			return err
		}
		return addEvent(ctx, tx, out, from, "server")
	})
	if err != nil {
		return job.Job{}, fmt.Errorf("requeueing job %s: %w", id, err)
	}
	return out, nil
}

// ExpireLeases returns every job whose lease ended before now to its queue,
// keeping its attempt, external id and cancel request, and returns their ids.
func (s *Store) ExpireLeases(ctx context.Context, now time.Time) ([]string, error) {
	ids := []string{}
	err := s.write(ctx, func(ctx context.Context, tx *wtx) error {
		ids = ids[:0]
		rows, err := tx.QueryContext(ctx, `SELECT `+jobColumns+` FROM jobs WHERE lease_agent <> '' AND lease_expires_at < ? ORDER BY seq`, toDB(now))
		if err != nil {
			return err
		}
		var expired []row
		for rows.Next() {
			r, err := scanJob(rows)
			if err != nil {
				rows.Close()
				return err
			}
			expired = append(expired, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		t := toDB(time.Now())
		for _, r := range expired {
			from, agent := r.State, r.Lease.Agent
			j := r.Job
			j.State, j.Reason, j.Lease, j.UpdatedAt = job.Queued, fmt.Sprintf("lease of agent %s expired", agent), nil, fromDB(t)
			if _, err := tx.ExecContext(ctx, `UPDATE jobs SET state = ?, reason = ?, lease_agent = '', lease_expires_at = 0,
				lease_token_id = '', updated_at = ? WHERE id = ?`, string(j.State), j.Reason, t, j.ID); err != nil {
				return err
			}
			if err := addEvent(ctx, tx, j, from, "server"); err != nil {
				return err
			}
			ids = append(ids, j.ID)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("expiring leases: %w", err)
	}
	return ids, nil
}

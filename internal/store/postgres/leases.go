package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
)

// claimSQL takes the next queued job of one queue and records its event, in
// one statement. SKIP LOCKED lets concurrent claimers pass over the row that
// another is taking rather than wait for it; the jobs_claim index serves
// the inner SELECT without a sort.
const claimSQL = `WITH c AS (
	UPDATE jobs SET state = $2, reason = $3, lease_agent = $4, lease_token = lease_token + 1,
		lease_expires_at = $5, updated_at = $6, lease_token_id = $7
	WHERE seq = (
		SELECT seq FROM jobs WHERE queue = $1 AND state = 'queued'
		ORDER BY priority DESC, seq LIMIT 1
		FOR UPDATE SKIP LOCKED
	) AND state = 'queued'
	RETURNING ` + jobColumns + `
), e AS (
	INSERT INTO events (job_id, at, from_state, to_state, reason, actor, attempt)
	SELECT id, updated_at, 'queued', state, reason, lease_agent, attempt FROM c
)
SELECT ` + jobColumns + ` FROM c`

// Claim takes the first queued job of the highest priority in the first of
// req.Queues that has one, oldest first, bumps its lease token and moves it
// to claimed; job.ErrNoJob when every queue is empty.
//
// A claim whose connection is lost is tried again even when it may have
// been applied: the job it took then has a lease nobody renews, which
// expires and returns it to its queue.
func (s *Store) Claim(ctx context.Context, req store.ClaimRequest) (job.Job, error) {
	js, err := s.ClaimN(ctx, req, 1)
	if err != nil {
		return job.Job{}, err
	}
	return js[0], nil
}

// claimManySQL is claimSQL for up to $7 jobs of one queue at once, answered
// in the order single claims would take them. ARRAY(...) makes the inner
// SELECT run once: as an IN (...) join the planner may run it again, and
// take more jobs than asked.
const claimManySQL = `WITH c AS (
	UPDATE jobs SET state = $2, reason = $3, lease_agent = $4, lease_token = lease_token + 1,
		lease_expires_at = $5, updated_at = $6, lease_token_id = $8
	WHERE seq = ANY(ARRAY(
		SELECT seq FROM jobs WHERE queue = $1 AND state = 'queued'
		ORDER BY priority DESC, seq LIMIT $7
		FOR UPDATE SKIP LOCKED
	)) AND state = 'queued'
	RETURNING seq, ` + jobColumns + `
), e AS (
	INSERT INTO events (job_id, at, from_state, to_state, reason, actor, attempt)
	SELECT id, updated_at, 'queued', state, reason, lease_agent, attempt FROM c ORDER BY priority DESC, seq
)
SELECT ` + jobColumns + ` FROM c ORDER BY priority DESC, seq`

// ClaimN takes up to n jobs, one per queue per pass over req.Queues, so
// that an agent serving several queues shares its slots among them. Once
// one queue alone may still yield jobs, it takes all it needs from it in
// one statement when the queue has no max_running. When a claim fails
// after some succeeded, ClaimN returns those it holds, since their agent
// must run them; the failure comes again on its next claim.
func (s *Store) ClaimN(ctx context.Context, req store.ClaimRequest, n int) ([]job.Job, error) {
	if err := store.ValidateClaim(req, n); err != nil {
		return nil, err
	}
	type source struct {
		name  string
		limit int // max_running; 0 for none
	}
	var queues []source // those that may still yield a job
	for _, q := range req.Queues {
		var limit int
		err := s.retry(ctx, true, func(ctx context.Context) error {
			return s.pool.QueryRow(ctx, `SELECT max_running FROM queues WHERE name = $1`, q).Scan(&limit)
		})
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("claiming jobs for agent %s: %w", req.Agent, err)
		}
		queues = append(queues, source{q, limit})
	}
	var out []job.Job
	for len(out) < n && len(queues) > 0 {
		for i := 0; i < len(queues) && len(out) < n; {
			q := queues[i]
			var js []job.Job
			var err error
			switch {
			case q.limit == 0 && len(queues) == 1:
				js, err = s.claimMany(ctx, req, q.name, n-len(out))
			case q.limit == 0:
				js, err = s.claimMany(ctx, req, q.name, 1)
			default:
				var r row
				if r, err = s.claimLimited(ctx, req, q.name); err == nil {
					js = []job.Job{r.Job}
				}
			}
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				if len(out) == 0 {
					return nil, fmt.Errorf("claiming jobs for agent %s: %w", req.Agent, err)
				}
				return out, nil
			}
			out = append(out, js...)
			if len(js) == 0 || q.limit == 0 && len(queues) == 1 {
				// Empty or at its cap; or it gave all it had at once.
				queues = slices.Delete(queues, i, i+1)
				continue
			}
			i++
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("claiming jobs for agent %s: %w", req.Agent, job.ErrNoJob)
	}
	return out, nil
}

// claimMany takes up to n jobs of queue q, which has no max_running.
func (s *Store) claimMany(ctx context.Context, req store.ClaimRequest, q string, n int) ([]job.Job, error) {
	var out []job.Job
	err := s.retry(ctx, true, func(ctx context.Context) error {
		out = out[:0] // a retry starts over
		t := now()
		rows, err := s.pool.Query(ctx, claimManySQL, q, string(job.Claimed), "claimed by agent "+req.Agent, req.Agent, t.Add(req.TTL), t, n, req.TokenID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scanJob(rows)
			if err != nil {
				return err
			}
			out = append(out, r.Job)
		}
		return rows.Err()
	})
	return out, err
}

// claimLimited claims from queue q, which caps its held jobs. Locking the
// queue's row serializes the claims of that queue, so that two claimers
// never both see the last free slot; enqueues, which only take a key-share
// lock on it for their foreign key, go on meanwhile.
func (s *Store) claimLimited(ctx context.Context, req store.ClaimRequest, q string) (row, error) {
	var r row
	err := s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		var limit, held int
		if err := tx.QueryRow(ctx, `SELECT max_running FROM queues WHERE name = $1 FOR NO KEY UPDATE`, q).Scan(&limit); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM jobs WHERE queue = $1 AND state IN `+heldStates, q).Scan(&held); err != nil {
			return err
		}
		if limit > 0 && held >= limit {
			return pgx.ErrNoRows
		}
		t := now()
		var err error
		r, err = scanJob(tx.QueryRow(ctx, claimSQL, q, string(job.Claimed), "claimed by agent "+req.Agent, req.Agent, t.Add(req.TTL), t, req.TokenID))
		return err
	})
	return r, err
}

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

// heldJob reads and locks job id in tx and checks it with store.CheckHeld.
func heldJob(ctx context.Context, tx pgx.Tx, id string, token int64, holder store.Holder) (row, error) {
	r, err := getJob(ctx, tx, id, true)
	if err != nil {
		return row{}, err
	}
	if err := store.CheckHeld(r.held(), token, holder); err != nil {
		return row{}, err
	}
	return r, nil
}

// Renew extends the lease by ttl from now; job.ErrForbidden for a job
// outside holder's queues, job.ErrLeaseLost when token is stale, the lease
// was taken away, or it is not held by holder. The holder and its queues
// are checked in the update itself: no read more, but on a refusal, to say
// why.
func (s *Store) Renew(ctx context.Context, id string, token int64, holder store.Holder, ttl time.Duration) (job.Job, error) {
	if ttl <= 0 {
		return job.Job{}, fmt.Errorf("%w: renewing job %s: lease ttl %v: want > 0", job.ErrInvalid, id, ttl)
	}
	var out job.Job
	queues := holder.Queues
	if queues == nil {
		queues = []string{} // an empty array, not NULL, for cardinality
	}
	// Extending a lease twice is harmless: a renewal may be retried.
	err := s.retry(ctx, true, func(ctx context.Context) error {
		r, err := scanJob(s.pool.QueryRow(ctx, `UPDATE jobs SET lease_expires_at = $3
			WHERE id = $1 AND lease_token = $2 AND lease_agent <> '' AND ($4 = '' OR lease_agent = $4)
				AND ($5 = '' OR lease_token_id = '' OR lease_token_id = $5)
				AND (cardinality($6::text[]) = 0 OR queue = ANY($6::text[]))
			RETURNING `+jobColumns, id, token, now().Add(ttl), holder.Agent, holder.TokenID, queues))
		if errors.Is(err, pgx.ErrNoRows) {
			r, err := getJob(ctx, s.pool, id, false)
			if err != nil {
				return err
			}
			if err := store.CheckQueue(r.Queue, holder); err != nil {
				return err
			}
			if r.Lease != nil && r.token == token {
				if err := store.CheckHolder(r.Lease, holder); err != nil {
					return err
				}
			}
			return fmt.Errorf("token %d: %w", token, job.ErrLeaseLost)
		}
		out = r.Job
		return err
	})
	if err != nil {
		return job.Job{}, fmt.Errorf("renewing the lease of job %s: %w", id, err)
	}
	return out, nil
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

// errRedo ends a batch's transaction that an update's statement aborted:
// the batch runs again without that update.
var errRedo = errors.New("an update failed in the database: running the batch again without it")

// Transitions applies each of us as Transition does, in one transaction:
// one commit for them all, and few round trips. One statement reads and
// locks every job of the batch, in id order, so that two batches never
// wait on each other's rows in a cycle; each update is checked and applied
// to the row as read (and as earlier updates of the batch left it), and
// the updates and their events go in one pipelined round trip. An update
// refused by its checks (a stale token, a move the lifecycle forbids)
// sends nothing; one whose statement fails in the database aborts the
// transaction, and the batch runs again without that one.
func (s *Store) Transitions(ctx context.Context, us []store.Update) ([]store.Moved, error) {
	if err := store.ValidateTransitions(us); err != nil {
		return nil, err
	}
	out := make([]store.Moved, len(us))
	var todo []int
	for i, u := range us {
		if _, err := job.ParseState(string(u.To)); err != nil {
			out[i].Err = err
			continue
		}
		todo = append(todo, i)
	}
	for len(todo) > 0 {
		failed := -1
		err := s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
			held, err := lockJobs(ctx, tx, us, todo)
			if err != nil {
				return err
			}
			var (
				b    pgx.Batch
				sent []int // b's statements apply us[sent[k]]
			)
			for _, i := range todo {
				u := us[i]
				r, ok := held[u.JobID]
				if !ok {
					out[i] = store.Moved{Err: job.ErrNotFound}
					continue
				}
				j, args, err := transition(r, u)
				out[i] = store.Moved{Job: j, Err: err}
				if err != nil {
					continue
				}
				held[u.JobID] = row{Job: j, token: r.token}
				b.Queue(transitionSQL, args...)
				sent = append(sent, i)
			}
			if len(sent) == 0 {
				return nil
			}
			br := tx.SendBatch(ctx, &b)
			for _, i := range sent {
				if _, err := br.Exec(); err != nil {
					_ = br.Close()
					var pe *pgconn.PgError
					if !errors.As(err, &pe) || connLost(err) {
						return err // inTx knows whether running it all again is safe
					}
					failed, out[i].Err = i, fmt.Errorf("updating the job and recording its event: %w", err)
					if strings.HasPrefix(pe.Code, "22") { // data_exception: a value the column cannot hold
						out[i].Err = fmt.Errorf("%w: %w", job.ErrInvalid, out[i].Err)
					}
					return errRedo
				}
			}
			return br.Close()
		})
		if errors.Is(err, errRedo) {
			todo = slices.DeleteFunc(todo, func(i int) bool { return i == failed })
			continue
		}
		if err != nil {
			for _, i := range todo {
				out[i] = store.Moved{Err: err}
			}
		}
		break
	}
	for i, m := range out {
		if m.Err != nil {
			out[i].Err = fmt.Errorf("moving job %s to %s: %w", us[i].JobID, us[i].To, m.Err)
		}
	}
	return out, nil
}

// lockJobs reads and locks, in id order, the jobs that the updates
// us[todo] move, by id; a missing job is not in the map.
func lockJobs(ctx context.Context, tx pgx.Tx, us []store.Update, todo []int) (map[string]row, error) {
	ids := make([]string, 0, len(todo))
	for _, i := range todo {
		ids = append(ids, us[i].JobID)
	}
	rows, err := tx.Query(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id = ANY($1) ORDER BY id FOR UPDATE`, ids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	held := make(map[string]row, len(ids))
	for rows.Next() {
		r, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		held[r.ID] = r
	}
	return held, rows.Err()
}

// transitionSQL updates a job and records its event in one statement.
const transitionSQL = `WITH u AS (
	UPDATE jobs SET state = $1, reason = $2, external_id = $3, image = $4, outputs = $5,
		lease_agent = $6, lease_expires_at = $7, updated_at = $8, lease_token_id = $13 WHERE id = $9 RETURNING id)
	INSERT INTO events (job_id, at, from_state, to_state, reason, actor, attempt)
	SELECT id, $8, $10, $1, $2, $11, $12 FROM u`

// transition checks u against the held job r and returns the job as u
// leaves it, with the arguments of transitionSQL that store it.
func transition(r row, u store.Update) (job.Job, []any, error) {
	if err := store.CheckHeld(r.held(), u.Token, u.Holder); err != nil {
		return job.Job{}, nil, err
	}
	u.Reason, u.ExternalID, u.Image, u.Outputs = clean(u.Reason), clean(u.ExternalID), clean(u.Image), cleanMap(u.Outputs)
	out, actor, err := store.Apply(r.Job, u, now())
	if err != nil {
		return job.Job{}, nil, err
	}
	agent, expires, tokenID := "", (*time.Time)(nil), ""
	if out.Lease != nil {
		agent, expires, tokenID = out.Lease.Agent, &out.Lease.ExpiresAt, out.Lease.TokenID
	}
	// The merged outputs are sent as they are, so the update is the same
	// whether or not this transaction is run again.
	outputs := out.Outputs
	if outputs == nil {
		outputs = map[string]string{}
	}
	return out, []any{string(out.State), out.Reason, out.ExternalID, out.Image, outputs, agent, expires, out.UpdatedAt, out.ID,
		string(r.State), actor, out.Attempt, tokenID}, nil
}

// Requeue starts a new attempt of a failed or preempted job, without its
// external id and any cancel request; job.ErrConflict for any other state.
func (s *Store) Requeue(ctx context.Context, id, reason string) (job.Job, error) {
	var out job.Job
	err := s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		r, err := getJob(ctx, tx, id, true)
		if err != nil {
			return err
		}
		from := r.State
		if from != job.Failed && from != job.Preempted {
			return fmt.Errorf("%w: a %s job cannot be queued again", job.ErrConflict, from)
		}
		out = r.Job
		out.State, out.Reason, out.Attempt, out.ExternalID, out.CancelRequested, out.UpdatedAt =
			job.Queued, clean(reason), r.Attempt+1, "", false, now()
		if _, err := tx.Exec(ctx, `UPDATE jobs SET state = $1, reason = $2, attempt = $3, external_id = '',
			cancel_requested = false, updated_at = $4 WHERE id = $5`,
			string(out.State), out.Reason, out.Attempt, out.UpdatedAt, id); err != nil {
			return err
		}
		return addEvent(ctx, tx, out, from, "server")
	})
	if err != nil {
		return job.Job{}, fmt.Errorf("requeueing job %s: %w", id, err)
	}
	return out, nil
}

// expireSQL returns the jobs whose lease ended before $1 to their queues
// and records their events, in one statement. A job whose row another
// transaction holds, a renewal say, is skipped until the next call.
const expireSQL = `WITH x AS (
	SELECT seq, state, lease_agent FROM jobs
	WHERE lease_agent <> '' AND lease_expires_at < $1
	ORDER BY seq
	FOR UPDATE SKIP LOCKED
), u AS (
	UPDATE jobs j SET state = 'queued', reason = 'lease of agent ' || x.lease_agent || ' expired',
		lease_agent = '', lease_expires_at = NULL, lease_token_id = '', updated_at = $2
	FROM x WHERE j.seq = x.seq
	RETURNING j.seq, j.id, j.reason, j.attempt, x.state AS from_state
), e AS (
	INSERT INTO events (job_id, at, from_state, to_state, reason, actor, attempt)
	SELECT id, $2, from_state, 'queued', reason, 'server', attempt FROM u ORDER BY seq
)
SELECT id FROM u ORDER BY seq`

// ExpireLeases returns every job whose lease ended before now to its queue,
// keeping its attempt, external id and cancel request, and returns their ids.
func (s *Store) ExpireLeases(ctx context.Context, now time.Time) ([]string, error) {
	var ids []string
	// Run again after a lost connection, it finds what is still expired.
	err := s.retry(ctx, true, func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, expireSQL, now, toDB(time.Now()))
		if err != nil {
			return err
		}
		ids, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("expiring leases: %w", err)
	}
	if ids == nil {
		ids = []string{}
	}
	return ids, nil
}

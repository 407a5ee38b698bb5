package sqlite

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
)

// claimSQL takes up to ?8 of the next queued jobs of queue ?7, by
// priority then age, in one statement; the jobs_claim index serves the
// inner SELECT without a sort. For a queue with a max_running, it takes no
// more than the queue has room for: writes are serialized, so the count
// of held jobs cannot change between the count and the update. Counting
// them costs a read of every held job of the queue, which the CASE spares
// the queues without a cap. A missing queue yields nothing.
var claimSQL = claimWhere(`seq IN`)

// claimOneSQL is claimSQL for one job (?8 is 1): a scalar subquery
// costs SQLite fewer steps than the list IN builds.
var claimOneSQL = claimWhere(`seq =`)

func claimWhere(match string) string {
	return `UPDATE jobs SET state = ?1, reason = ?2, lease_agent = ?3, lease_token = lease_token + 1,
	lease_expires_at = ?4, updated_at = ?5, lease_token_id = ?6
WHERE ` + match + ` (` + nextQueued("?7", "?8") + `)
RETURNING seq, ` + jobColumns
}

// nextQueued is the SELECT of the seqs of the next n queued jobs of queue
// (parameters), by priority then age, that claims may take: no more than
// the queue's max_running leaves room for, and none of a missing queue.
func nextQueued(queue, n string) string {
	return `SELECT seq FROM jobs WHERE queue = ` + queue + ` AND state = 'queued' ORDER BY priority DESC, seq
	LIMIT coalesce((SELECT CASE WHEN q.max_running > 0
		THEN min(` + n + `, max(0, q.max_running - ` + heldCount + `))
		ELSE ` + n + ` END FROM queues q WHERE q.name = ` + queue + `), 0)`
}

// heldCount counts the held jobs of queue q: what its max_running caps.
// It asks both halves of byLease, as every read by state does.
var heldCount = countByLease(`h.queue = q.name AND h.state IN `+heldStates, "h")

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
// one transaction: one commit for them all. It takes what the passes would
// take in as few statements as it can: while every queue still in play
// can give k = (jobs still wanted / queues in play) ≥ 1 more, the next k
// passes take k from each, so each queue is asked once for k; a queue
// that gives fewer is out. The last, partial pass asks for one job at a
// time. The jobs are then answered in the order of the passes, and their
// events recorded in one statement. The writer takes a claim of one queue
// together with the other claims of its transaction (see Store.together).
func (s *Store) ClaimN(ctx context.Context, req store.ClaimRequest, n int) ([]job.Job, error) {
	if err := store.ValidateClaim(req, n); err != nil {
		return nil, err
	}
	w := claimWrite(ctx, req, n)
	err := s.send(w)[0]
	if err != nil {
		return nil, fmt.Errorf("claiming jobs for agent %s: %w", req.Agent, err)
	}
	rows := w.claim.rows
	out := make([]job.Job, len(rows))
	for i, r := range rows {
		r, err := r.decodeSpec()
		if err != nil {
			return nil, fmt.Errorf("claiming jobs for agent %s: %w", req.Agent, err)
		}
		out[i] = r.Job
	}
	return out, nil
}

// claimWrite is the write of ClaimN: its one fn claims alone, when the
// writer does not run it with others, and sets claim.rows too.
func claimWrite(ctx context.Context, req store.ClaimRequest, n int) *writeReq {
	c := &claimReq{req: req, n: n}
	fn := func(ctx context.Context, tx *wtx) error {
		rows, err := claimAlone(ctx, tx, req, n)
		c.rows = rows
		return err
	}
	return &writeReq{ctx: ctx, fns: []func(context.Context, *wtx) error{fn}, errs: make([]error, 1), done: make(chan struct{}), claim: c}
}

// claimAlone is ClaimN's write, run on its own: the jobs it took in the
// order of the passes.
func claimAlone(ctx context.Context, tx *wtx, req store.ClaimRequest, n int) ([]claimedRow, error) {
	// A queue named twice is in each pass twice, and the two take turns
	// at its jobs: only passes of one job each keep that order.
	one := named2(req.Queues)
	got := make([][]claimedRow, len(req.Queues)) // by index in req.Queues, each in its queue's order
	t := now()
	args := []any{string(job.Claimed), "claimed by agent " + req.Agent, req.Agent, toDB(t.Add(req.TTL)), toDB(t), req.TokenID, "", 0}
	var (
		in    = make([]int, len(req.Queues)) // indexes in req.Queues of the queues in play
		taken int
	)
	for i := range in {
		in[i] = i
	}
	for taken < n && len(in) > 0 {
		k := (n - taken) / len(in)
		if k == 0 || one {
			k = 1
		}
		for i := 0; i < len(in) && taken < n; {
			q := in[i]
			args[6], args[7] = req.Queues[q], k
			rs, err := claimRows(ctx, tx, args)
			if err != nil {
				return nil, err
			}
			got[q] = append(got[q], rs...)
			taken += len(rs)
			if len(rs) < k {
				in = slices.Delete(in, i, i+1) // empty, or at its cap
				continue
			}
			i++
		}
	}
	if taken == 0 {
		return nil, job.ErrNoJob
	}
	rows := passes(got)
	var events []any
	for _, r := range rows {
		events = append(events, r.ID, toDB(r.UpdatedAt), string(job.Queued), string(r.State), r.Reason, req.Agent, r.Attempt)
	}
	if err := eventsSQL.exec(ctx, tx, events); err != nil {
		return nil, fmt.Errorf("recording events: %w", err)
	}
	return rows, nil
}

// named2 reports whether a queue is named twice in qs.
func named2(qs []string) bool {
	for i, q := range qs {
		if slices.Contains(qs[:i], q) {
			return true
		}
	}
	return false
}

// claimedRow is a row that claimSQL returned, with its seq.
type claimedRow struct {
	row
	seq int64
}

// claimRows runs claimSQL with args and returns the jobs it claimed in
// their queue's order: by priority, then age.
func claimRows(ctx context.Context, tx *wtx, args []any) ([]claimedRow, error) {
	query := claimSQL
	if args[7] == 1 {
		query = claimOneSQL
	}
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	var out []claimedRow
	if err := scanSeqRows(rows, func(r row, seq int64) { out = append(out, claimedRow{row: r, seq: seq}) }); err != nil {
		return nil, err
	}
	// RETURNING gives the rows in no promised order.
	slices.SortFunc(out, func(a, b claimedRow) int {
		if a.Priority != b.Priority {
			return cmp.Compare(b.Priority, a.Priority)
		}
		return cmp.Compare(a.seq, b.seq)
	})
	return out, nil
}

// passes lists the jobs that each queue gave, got[i] in its queue's order,
// in the order of the passes that took them: the first of each queue in
// turn, then the second of each, and so on.
func passes(got [][]claimedRow) []claimedRow {
	var out []claimedRow
	for p := 0; ; p++ {
		more := false
		for _, rs := range got {
			if p < len(rs) {
				out = append(out, rs[p])
				more = true
			}
		}
		if !more {
			return out
		}
	}
}

// heldJob reads job id in tx and checks it with store.CheckHeld.
func heldJob(ctx context.Context, tx *wtx, id string, token int64, holder store.Holder) (row, error) {
	r, err := getRow(ctx, tx, id)
	if err != nil {
		return row{}, err
	}
	if err := store.CheckHeld(store.Held{Job: r.Job, Token: r.token}, token, holder); err != nil {
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
		rows, err := tx.QueryContext(ctx, `SELECT `+jobColumns+` FROM jobs INDEXED BY jobs_held WHERE `+held+` AND lease_expires_at < ? ORDER BY seq`, toDB(now))
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

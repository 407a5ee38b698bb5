package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/slipway-ml/slipway/internal/store"
)

// heldSQL reads the jobs of a batch, by id, with the seq that its writes
// find each by.
var heldSQL = newRowsSQL(`SELECT seq, `+jobColumns+` FROM jobs WHERE id = ?`,
	`SELECT seq, `+jobColumns+` FROM jobs WHERE id IN (`, 1, `)`)

// moveColumns are the columns a move writes, after the seq of its job.
const moveColumns = `state = v.column2, reason = v.column3, external_id = v.column4, image = v.column5,
	outputs = v.column6, updated_at = v.column7`

// moveOneColumns are moveColumns set from the parameters of a single
// row: ?1 is its seq.
const moveOneColumns = `state = ?2, reason = ?3, external_id = ?4, image = ?5, outputs = ?6, updated_at = ?7`

// releaseColumns end a lease.
const releaseColumns = `lease_agent = '', lease_expires_at = 0, lease_token_id = ''`

// keepSQL writes the jobs that a batch moved and that are still held:
// the lease columns stay as they are, since naming them would have
// SQLite rewrite the entries of the indexes split by lease for nothing. A row is (seq, state, reason,
// external_id, image, outputs, updated_at).
var keepSQL = newRowsSQL(`UPDATE jobs SET `+moveOneColumns+` WHERE seq = ?1`,
	`UPDATE jobs SET `+moveColumns+` FROM (VALUES `, 7, `) v WHERE jobs.seq = v.column1`)

// releaseSQL is keepSQL for the jobs whose lease the batch released.
var releaseSQL = newRowsSQL(`UPDATE jobs SET `+moveOneColumns+`, `+releaseColumns+` WHERE seq = ?1`,
	`UPDATE jobs SET `+moveColumns+`, `+releaseColumns+` FROM (VALUES `, 7, `) v WHERE jobs.seq = v.column1`)

// eventsSQL records moves, in order. A row is (job_id, at, from_state,
// to_state, reason, actor, attempt).
var eventsSQL = newRowsSQL(`INSERT INTO events (job_id, at, from_state, to_state, reason, actor, attempt) VALUES (?, ?, ?, ?, ?, ?, ?)`,
	`INSERT INTO events (job_id, at, from_state, to_state, reason, actor, attempt)
	SELECT * FROM (VALUES `, 7, `) WHERE column1 IS NOT NULL`)

// batchError marks the failure of a batch's write: the database refused
// something in it, and only a run of one move at a time tells which move.
type batchError struct{ err error }

func (e batchError) Error() string { return e.err.Error() }
func (e batchError) Unwrap() error { return e.err }

// Transitions applies each of us as Transition does, all in one write
// of the writer, without a savepoint each: one statement reads every job
// of the batch, each update is checked and applied in Go (store.ApplyEach)
// to the job as read and as the batch's earlier updates left it, then one
// statement writes the jobs still held, one those released and one the
// events (one of each per maxChunk rows). A refused update writes
// nothing. The writer runs the batches of the Transitions that share a
// transaction as one batch, in the order it took them (see
// Store.together). When the database refuses one of the writes, the
// batch runs again one move at a time, each in its own savepoint, so that
// the refused move is undone alone.
func (s *Store) Transitions(ctx context.Context, us []store.Update) ([]store.Moved, error) {
	if err := store.ValidateTransitions(us); err != nil {
		return nil, err
	}
	if len(us) == 0 {
		return []store.Moved{}, nil
	}
	m := &moveReq{us: us}
	req := &writeReq{ctx: ctx, moves: m, errs: make([]error, 1), done: make(chan struct{})}
	req.fns = []func(context.Context, *wtx) error{func(ctx context.Context, tx *wtx) error {
		var err error
		m.res, err = moveBatch(ctx, tx, us)
		return err
	}}
	err := s.send(req)[0]
	steps, errs, specs := m.res.steps, m.res.errs, m.res.specs
	var be batchError
	if errors.As(err, &be) {
		return s.transitionsEach(ctx, us)
	}
	out := make([]store.Moved, len(us))
	for i, u := range us {
		switch {
		case err != nil:
			out[i].Err = err
		case errs[i] != nil:
			out[i].Err = errs[i]
		default:
			r, derr := row{Job: steps[i].Job, spec: specs[u.JobID]}.decodeSpec()
			out[i] = store.Moved{Job: r.Job, Err: derr}
		}
		if out[i].Err != nil {
			out[i] = store.Moved{Err: fmt.Errorf("moving job %s to %s: %w", u.JobID, u.To, out[i].Err)}
		}
	}
	return out, nil
}

// moveReq is a Transitions' batch on its way through the writer.
type moveReq struct {
	us  []store.Update
	res moveResult // set by the writer
	ran bool       // set by the writer when it ran us with other batches
}

// moveResult is what moveBatch did: each update's step or error, at its
// index, and the specs of the jobs read, by id, still encoded.
type moveResult struct {
	steps []store.Step
	errs  []error
	specs map[string]string
}

// moveBatch is Transitions' write.
func moveBatch(ctx context.Context, tx *wtx, us []store.Update) (moveResult, error) {
	res, events, err := moveRows(ctx, tx, us)
	if err != nil {
		return moveResult{}, err
	}
	if err := eventsSQL.exec(ctx, tx, events); err != nil {
		return moveResult{}, batchError{fmt.Errorf("recording the events of a batch of moves: %w", err)}
	}
	return res, nil
}

// moveRows is moveBatch but for the events, whose rows it returns for
// eventsSQL, so that the writer records them with others (see together).
func moveRows(ctx context.Context, tx *wtx, us []store.Update) (moveResult, []any, error) {
	held, seqs, specs, err := readHeld(ctx, tx, us)
	if err != nil {
		return moveResult{}, nil, err
	}
	steps, errs := store.ApplyEach(held, us, now())
	kept := 0
	for _, h := range held {
		if h.Lease != nil {
			kept++
		}
	}
	w := keepSQL.width
	var (
		keep    = make([]any, 0, kept*w)
		release = make([]any, 0, (len(held)-kept)*w)
		events  = make([]any, 0, len(us)*eventsSQL.width)
		written = make(map[string]bool, len(held))
	)
	for i, st := range steps {
		if errs[i] != nil {
			continue
		}
		j := st.Job
		events = append(events, j.ID, toDB(j.UpdatedAt), string(st.From), string(j.State), j.Reason, st.Actor, j.Attempt)
		if written[j.ID] {
			continue
		}
		written[j.ID] = true
		// The job's last state in the batch is what gets written.
		last := held[j.ID].Job
		outputs := "{}"
		if len(last.Outputs) > 0 {
			if b, err := json.Marshal(last.Outputs); err == nil {
				outputs = string(b)
			}
		}
		rows := &release
		if last.Lease != nil {
			rows = &keep
		}
		*rows = append(*rows, seqs[j.ID], string(last.State), last.Reason, last.ExternalID, last.Image, outputs, toDB(last.UpdatedAt))
	}
	for _, w := range []struct {
		q    *rowsSQL
		args []any
	}{{keepSQL, keep}, {releaseSQL, release}} {
		if err := w.q.exec(ctx, tx, w.args); err != nil {
			return moveResult{}, nil, batchError{fmt.Errorf("writing a batch of moves: %w", err)}
		}
	}
	return moveResult{steps, errs, specs}, events, nil
}

// readHeld reads every job that us move: each as a store.Held, its seq
// and its spec still encoded, by id. A job missing is in none of the
// maps.
func readHeld(ctx context.Context, tx *wtx, us []store.Update) (map[string]store.Held, map[string]int64, map[string]string, error) {
	ids := make([]any, 0, len(us))
	seen := make(map[string]bool, len(us))
	for _, u := range us {
		if !seen[u.JobID] {
			seen[u.JobID] = true
			ids = append(ids, u.JobID)
		}
	}
	held := make(map[string]store.Held, len(ids))
	seqs := make(map[string]int64, len(ids))
	specs := make(map[string]string, len(ids))
	err := heldSQL.query(ctx, tx, ids, func(r row, seq int64) {
		held[r.ID] = store.Held{Job: r.Job, Token: r.token}
		seqs[r.ID], specs[r.ID] = seq, r.spec
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("reading the jobs of a batch: %w", err)
	}
	return held, seqs, specs, nil
}

// transitionsEach is Transitions one move at a time, each a batch of one
// in its own savepoint: for a batch whose write the database refused, so
// that the refused move is undone alone.
func (s *Store) transitionsEach(ctx context.Context, us []store.Update) ([]store.Moved, error) {
	out := make([]store.Moved, len(us))
	specs := make([]string, len(us)) // decoded after the write, outside the writer
	fns := make([]func(context.Context, *wtx) error, len(us))
	for i, u := range us {
		fns[i] = func(ctx context.Context, tx *wtx) error {
			res, err := moveBatch(ctx, tx, []store.Update{u})
			if err == nil {
				err = res.errs[0]
			}
			if err == nil {
				out[i].Job, specs[i] = res.steps[0].Job, res.specs[u.JobID]
			}
			return err
		}
	}
	for i, err := range s.writeEach(ctx, fns...) {
		if err == nil {
			var r row
			r, err = row{Job: out[i].Job, spec: specs[i]}.decodeSpec()
			out[i].Job = r.Job
		}
		if err != nil {
			out[i] = store.Moved{Err: fmt.Errorf("moving job %s to %s: %w", us[i].JobID, us[i].To, err)}
		}
	}
	return out, nil
}

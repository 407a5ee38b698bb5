package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
)

// A batch of moves costs a few statements whatever its size: every
// statement through database/sql and SQLite costs about as much as the
// work it does for one job. The batch's rows go to SQLite as one JSON
// array bound to one parameter, so that each statement's text is fixed
// and stays prepared.

// heldSQL reads every job of a batch, by id, with the seq its writes
// find it by.
const heldSQL = `SELECT seq, ` + jobColumns + ` FROM jobs WHERE id IN (SELECT value FROM json_each(?))`

// keepSQL writes the jobs that a batch moved and that are still held:
// the lease columns stay as they are, since naming them would rewrite
// the jobs_lease index entry for nothing. Each element is
// [seq, state, reason, external_id, image, outputs, updated_at].
const keepSQL = `UPDATE jobs SET state = v.value->>1, reason = v.value->>2, external_id = v.value->>3,
	image = v.value->>4, outputs = v.value->>5, updated_at = v.value->>6
FROM json_each(?) v WHERE jobs.seq = v.value->>0`

// releaseSQL is keepSQL for the jobs whose lease the batch released.
const releaseSQL = `UPDATE jobs SET state = v.value->>1, reason = v.value->>2, external_id = v.value->>3,
	image = v.value->>4, outputs = v.value->>5, updated_at = v.value->>6,
	lease_agent = '', lease_expires_at = 0, lease_token_id = ''
FROM json_each(?) v WHERE jobs.seq = v.value->>0`

// eventsSQL records the moves of a batch, in order. Each element is
// [job_id, at, from_state, to_state, reason, actor, attempt].
const eventsSQL = `INSERT INTO events (job_id, at, from_state, to_state, reason, actor, attempt)
SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6 FROM json_each(?)`

// errOdd stops a batch that holds text JSON cannot carry as it is (bytes
// that are not UTF-8, NUL): it is run again one move at a time, with
// every value bound as it is.
var errOdd = errors.New("text that JSON would alter")

// batchError marks the failure of one of a batch's statements: the
// database refused something in it, and only a run of one move at a time
// tells which move.
type batchError struct{ err error }

func (e batchError) Error() string { return e.err.Error() }
func (e batchError) Unwrap() error { return e.err }

// Transitions applies each of us as Transition does, all in one write
// of the writer: one statement reads every job of the batch, each update
// is checked and applied in Go to the job as read (and as the batch's
// earlier updates left it), then one statement writes the jobs still
// held, one those released and one the events. A refused update writes
// nothing. When the database refuses one of those statements, the batch
// runs again one move at a time, each in its own savepoint, so that the
// refused move is undone alone.
func (s *Store) Transitions(ctx context.Context, us []store.Update) ([]store.Moved, error) {
	if err := store.ValidateTransitions(us); err != nil {
		return nil, err
	}
	if len(us) == 0 {
		return []store.Moved{}, nil
	}
	var (
		steps []store.Step
		errs  []error
		specs map[string]string // by job id, decoded after the write, outside the writer
	)
	err := s.write(ctx, func(ctx context.Context, tx *wtx) error {
		var err error
		steps, errs, specs, err = moveBatch(ctx, tx, us)
		return err
	})
	var be batchError
	if errors.Is(err, errOdd) || errors.As(err, &be) {
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

// moveBatch is Transitions' write: it returns each update's step or
// error, at its index, and the specs of the jobs read, by id.
func moveBatch(ctx context.Context, tx *wtx, us []store.Update) ([]store.Step, []error, map[string]string, error) {
	held, seqs, specs, err := readHeld(ctx, tx, us)
	if err != nil {
		return nil, nil, nil, err
	}
	steps, errs := store.ApplyEach(held, us, now())
	var (
		keep, release, events []byte
		written               = make(map[string]bool, len(held))
	)
	for i, st := range steps {
		if errs[i] != nil {
			continue
		}
		j := st.Job
		if !plain(j.ID) || !plain(j.Reason) || !plain(st.Actor) {
			return nil, nil, nil, errOdd
		}
		events = appendArray(next(events), j.ID, toDB(j.UpdatedAt), string(st.From), string(j.State), j.Reason, st.Actor, int64(j.Attempt))
		if written[j.ID] {
			continue
		}
		written[j.ID] = true
		// The job's last state in the batch is what gets written.
		last := held[j.ID].Job
		if !plain(last.ExternalID) || !plain(last.Image) || !plain(last.Reason) {
			return nil, nil, nil, errOdd
		}
		outputs, err := json.Marshal(last.Outputs)
		if err != nil || last.Outputs == nil {
			outputs = []byte("{}")
		}
		rows := &release
		if last.Lease != nil {
			rows = &keep
		}
		*rows = appendArray(next(*rows), seqs[j.ID], string(last.State), last.Reason, last.ExternalID, last.Image, string(outputs), toDB(last.UpdatedAt))
	}
	for _, w := range []struct {
		query string
		rows  []byte
	}{{keepSQL, keep}, {releaseSQL, release}, {eventsSQL, events}} {
		if w.rows == nil {
			continue
		}
		if _, err := tx.ExecContext(ctx, w.query, string(append(w.rows, ']'))); err != nil {
			return nil, nil, nil, batchError{fmt.Errorf("writing a batch of moves: %w", err)}
		}
	}
	return steps, errs, specs, nil
}

// readHeld reads every job that us move, in one statement: each as a
// store.Held, its seq and its spec still encoded, by id. A job missing
// is in none of the maps.
func readHeld(ctx context.Context, tx *wtx, us []store.Update) (map[string]store.Held, map[string]int64, map[string]string, error) {
	var ids []byte
	for _, u := range us {
		if !plain(u.JobID) {
			return nil, nil, nil, errOdd
		}
		ids = appendString(next(ids), u.JobID)
	}
	ids = append(ids, ']')
	rows, err := tx.QueryContext(ctx, heldSQL, string(ids))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("reading the jobs of a batch: %w", err)
	}
	defer rows.Close()
	held := make(map[string]store.Held, len(us))
	seqs := make(map[string]int64, len(us))
	specs := make(map[string]string, len(us))
	for rows.Next() {
		var seq int64
		r, err := scanRow(rows, &seq)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("reading the jobs of a batch: %w", err)
		}
		held[r.ID] = store.Held{Job: r.Job, Token: r.token}
		seqs[r.ID], specs[r.ID] = seq, r.spec
	}
	if err := rows.Err(); err != nil {
		return nil, nil, nil, fmt.Errorf("reading the jobs of a batch: %w", err)
	}
	return held, seqs, specs, nil
}

// transitionsEach is Transitions one move at a time, each in its own
// savepoint with its values bound as they are: for a batch that the
// batched statements cannot carry or that the database refused.
func (s *Store) transitionsEach(ctx context.Context, us []store.Update) ([]store.Moved, error) {
	out := make([]store.Moved, len(us))
	specs := make([]string, len(us)) // decoded after the write, outside the writer
	fns := make([]func(context.Context, *wtx) error, 0, len(us))
	idx := make([]int, 0, len(us)) // fns[k] applies us[idx[k]]
	for i, u := range us {
		if _, err := job.ParseState(string(u.To)); err != nil {
			out[i].Err = fmt.Errorf("moving job %s to %s: %w", u.JobID, u.To, err)
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
		// Still held: see keepSQL.
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

// plain reports whether JSON carries s unaltered to SQLite: valid UTF-8
// (encoding/json replaces bad bytes) without NUL (which SQLite's text
// would end at).
func plain(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// next starts the next element of the JSON array being built in b
// (without its closing bracket).
func next(b []byte) []byte {
	if b == nil {
		return append(b, '[')
	}
	return append(b, ',')
}

// appendArray appends to b a JSON array of vals: strings (plain, see
// plain) and int64s.
func appendArray(b []byte, vals ...any) []byte {
	b = append(b, '[')
	for i, v := range vals {
		if i > 0 {
			b = append(b, ',')
		}
		switch v := v.(type) {
		case string:
			b = appendString(b, v)
		case int64:
			b = strconv.AppendInt(b, v, 10)
		default:
			panic(fmt.Sprintf("appendArray: %T", v))
		}
	}
	return append(b, ']')
}

// appendString appends s, plain, as a JSON string.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

package store

import (
	"fmt"
	"time"

	"github.com/slipway-ml/slipway/internal/job"
)

// Held is a job as a fenced write reads it: the job, and its current
// lease token, which job.Job shows (as Lease.Token) only while the lease
// is held.
type Held struct {
	job.Job
	Token int64
}

// CheckHeld returns why holder may not act with token on h: job.ErrForbidden
// for a job outside holder's queues (see CheckQueue), checked first so that
// a scoped caller learns nothing of other queues' leases; job.ErrLeaseLost
// when token is not h's current, held lease, or the lease is not held by
// holder (see CheckHolder).
func CheckHeld(h Held, token int64, holder Holder) error {
	if err := CheckQueue(h.Queue, holder); err != nil {
		return err
	}
	if h.Lease == nil || h.Token != token {
		return fmt.Errorf("token %d: %w", token, job.ErrLeaseLost)
	}
	return CheckHolder(h.Lease, holder)
}

// Step is what one update of a batch did: the job it moved as it left it,
// the state it moved it from, and the actor its event names.
type Step struct {
	From  job.State
	Job   job.Job
	Actor string
}

// ApplyEach checks and applies each of us, in order, to the jobs read for
// them, by id, at time now, as Transitions does: an update of a job not in
// held is job.ErrNotFound, one with an unknown state job.ErrInvalid, then
// CheckHeld and Apply decide. A later update of one job sees what the
// earlier left, and a refused update leaves the job as it was. held is
// updated in place, so that it ends with each job's last state: what the
// store writes back. It returns each update's step, or its error, at its
// index; the errors name no job, so that the store wraps them alike.
func ApplyEach(held map[string]Held, us []Update, now time.Time) ([]Step, []error) {
	steps := make([]Step, len(us))
	errs := make([]error, len(us))
	for i, u := range us {
		if _, err := job.ParseState(string(u.To)); err != nil {
			errs[i] = err
			continue
		}
		h, ok := held[u.JobID]
		if !ok {
			errs[i] = job.ErrNotFound
			continue
		}
		if err := CheckHeld(h, u.Token, u.Holder); err != nil {
			errs[i] = err
			continue
		}
		out, actor, err := Apply(h.Job, u, now)
		if err != nil {
			errs[i] = err
			continue
		}
		steps[i] = Step{From: h.State, Job: out, Actor: actor}
		held[u.JobID] = Held{Job: out, Token: h.Token}
	}
	return steps, errs
}

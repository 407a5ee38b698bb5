package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/metrics"
	"github.com/slipway-ml/slipway/internal/store"
)

// transitions answers POST /v1/transitions: many jobs' moves, each
// checked, applied and answered as POST /v1/jobs/{id}/transition would
// answer it alone, and all committed together where the store can. A move
// refused (a lost lease, a job of a queue the token may not act on) is
// answered in its place; the others land. A claim the request carries is
// answered after the moves (see api.Transitions).
func (s *Server) transitions(w http.ResponseWriter, r *http.Request) {
	var req api.Transitions
	if err := readJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if len(req.Transitions) > api.MaxTransitions {
		s.writeError(w, r, fmt.Errorf("%w: transitions: %d moves: want at most %d", job.ErrInvalid, len(req.Transitions), api.MaxTransitions))
		return
	}
	// The claim goes to the store beside the moves, so that both share a
	// commit where they can (see claimBeside).
	var (
		claimed  []api.Claimed
		claimErr error
		wg       sync.WaitGroup
	)
	beside := req.Claim != nil && s.claimBeside(r.Context(), req.Claim.Queues)
	if beside {
		wg.Go(func() { claimed, claimErr = s.claimNow(r.Context(), *req.Claim) })
	}
	ms := s.moveJobs(r.Context(), req.Transitions)
	wg.Wait()
	if req.Claim != nil && !beside {
		claimed, claimErr = s.claimNow(r.Context(), *req.Claim)
	}
	out := api.Moves{Moves: make([]api.Move, len(ms))}
	for i, m := range ms {
		if m.err != nil {
			if gone := r.Context().Err(); gone != nil && errors.Is(m.err, gone) {
				return // the client hung up: nobody reads the answer
			}
			out.Moves[i].Error = &api.Error{Code: api.CodeOf(m.err), Message: m.err.Error()}
			if api.ErrOf(out.Moves[i].Error.Code) == nil {
				s.log.Error("moving a job of a batch", "job", req.Transitions[i].Job, "err", m.err)
			}
			continue
		}
		out.Moves[i].State = m.job.State
	}
	if claimErr != nil {
		if r.Context().Err() != nil {
			return
		}
		out.ClaimError = &api.Error{Code: api.CodeOf(claimErr), Message: claimErr.Error()}
		if api.ErrOf(out.ClaimError.Code) == nil {
			s.log.Error("claiming with a batch of moves", "agent", req.Claim.Agent, "err", claimErr)
		}
	}
	out.Claims = claimed
	writeJSON(w, http.StatusOK, out)
}

// moved is how one move of moveJobs went: the job it left, or why not.
// The job points into the store's answer rather than copies it: a batch
// answers only each job's state.
type moved struct {
	job *job.Job
	err error
}

// moveJobs applies the moves ts asks for, on behalf of the request's
// token: each is vetted (a known state), its reason and outputs redacted
// of the job's secrets, then all go to the store in one batch under the
// token's lease binding and queues, which the store checks as it applies
// each (see holderOf and scopeRefused). For each move that landed it logs,
// counts the outcome, requeues a preempted job within its attempts, and
// wakes the claims and followers waiting.
func (s *Server) moveJobs(ctx context.Context, ts []api.JobTransition) []moved {
	out := make([]moved, len(ts))
	us := make([]store.Update, 0, len(ts))
	idx := make([]int, 0, len(ts)) // us[k] is the move of ts[idx[k]]
	holder := holderOf(ctx)
	for i, t := range ts {
		if _, err := job.ParseState(string(t.To)); err != nil {
			out[i].err = err
			continue
		}
		reason, outputs := s.redactReport(ctx, t.Job, t.Reason, t.Outputs)
		us = append(us, store.Update{JobID: t.Job, Token: t.Token, To: t.To, Reason: reason,
			ExternalID: t.ExternalID, Image: t.Image, Outputs: outputs, Holder: holder})
		idx = append(idx, i)
	}
	if len(us) == 0 {
		return out
	}
	ms, err := s.store.Transitions(ctx, us)
	if err != nil {
		for _, i := range idx {
			out[i].err = err
		}
		return out
	}
	wake := false
	for k, m := range ms {
		i := idx[k]
		if m.Err != nil {
			out[i].err = scopeRefused(ctx, us[k].JobID, "move", m.Err)
			continue
		}
		j := &ms[k].Job
		if s.log.Enabled(ctx, slog.LevelInfo) {
			s.log.LogAttrs(ctx, slog.LevelInfo, "job moved", slog.String("job", j.ID), slog.String("queue", j.Queue),
				slog.String("state", string(j.State)), slog.String("reason", j.Reason), slog.Int("attempt", j.Attempt))
		}
		metrics.Default.ObserveOutcome(j.Queue, j.State)
		if j.State == job.Preempted {
			rj := s.retryPreempted(ctx, *j)
			j = &rj
		}
		// A job back in its queue may be claimed; one that ended frees a
		// slot of its queue's max_running: either way, waiting claims
		// look again.
		if j.State == job.Queued || j.State.Terminal() {
			wake = true
		}
		if j.State.Terminal() {
			s.secrets.forget(j.ID)
		}
		out[i].job = j
	}
	if wake {
		s.work.fire()
	}
	if len(ms) > 0 {
		s.changes.fire()
	}
	return out
}

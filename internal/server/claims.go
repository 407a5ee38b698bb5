package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
)

// claimJobs reads a claim and waits up to its Wait for jobs, taking up to
// its Max when many is set, one otherwise. When it returns ok false it has
// answered the request itself: an error, or no job.
func (s *Server) claimJobs(w http.ResponseWriter, r *http.Request, many bool) (_ []api.Claimed, ok bool) {
	var req api.Claim
	if err := readJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return nil, false
	}
	ctx := r.Context()
	asked, n, err := s.startClaim(ctx, req, many)
	if err != nil {
		s.writeError(w, r, err)
		return nil, false
	}
	deadline := time.NewTimer(min(req.Wait, s.cfg.MaxWait))
	defer deadline.Stop()
	for {
		woken := s.work.wait()
		cs, err := s.claimOnce(ctx, req.Agent, asked, n)
		if err != nil {
			s.writeError(w, r, err)
			return nil, false
		}
		if len(cs) > 0 {
			return cs, true
		}
		if !s.awaitWork(ctx, woken, deadline.C) {
			if ctx.Err() == nil {
				w.WriteHeader(http.StatusNoContent)
			}
			return nil, false
		}
	}
}

// claimNow answers the claim that a POST /v1/transitions carries: as POST
// /v1/claims with a Wait of 0 would answer it (the same checks, queue
// order, leases and secrets), but with no job as an empty answer, not an
// error, and no waiting: the agent that sent it still has its own claim
// loop for when the piggyback finds nothing.
func (s *Server) claimNow(ctx context.Context, req api.Claim) ([]api.Claimed, error) {
	asked, n, err := s.startClaim(ctx, req, true)
	if err != nil {
		return nil, err
	}
	return s.claimOnce(ctx, req.Agent, asked, n)
}

// startClaim checks req and notes that its agent is alive; it returns the
// queues it asks for, resolved (see claimQueues), and how many jobs it
// may take: its Max when many is set, one otherwise.
func (s *Server) startClaim(ctx context.Context, req api.Claim, many bool) (asked []string, n int, err error) {
	if req.Agent == "" || len(req.Queues) == 0 {
		return nil, 0, fmt.Errorf("%w: claim: agent and queues are required", job.ErrInvalid)
	}
	n = 1
	if many {
		if req.Max < 0 || req.Max > api.MaxClaim {
			return nil, 0, fmt.Errorf("%w: claim: max %d: want 1 to %d", job.ErrInvalid, req.Max, api.MaxClaim)
		}
		n = max(req.Max, 1)
	}
	if asked, err = claimQueues(ctx, req.Queues); err != nil {
		return nil, 0, err
	}
	s.touch(ctx, req.Agent)
	return asked, n, nil
}

// claimOnce takes up to n jobs of the queues asked for agent, in the
// queues' order of the moment, and hands them out; none, and no error,
// when no job waits. When every job it took was one the server had to
// end, it takes again. Jobs taken for an agent that hung up go back.
func (s *Server) claimOnce(ctx context.Context, agent string, asked []string, n int) ([]api.Claimed, error) {
	for {
		queues, err := s.claimOrder(ctx, asked)
		if err != nil || len(queues) == 0 {
			return nil, err
		}
		js, err := s.store.ClaimN(ctx, store.ClaimRequest{Agent: agent, Queues: queues, TTL: s.cfg.LeaseTTL, TokenID: callerTokenID(ctx)}, n)
		if errors.Is(err, job.ErrNoJob) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		cs, err := s.handOut(ctx, agent, js)
		if err != nil {
			return nil, err
		}
		if len(cs) == 0 {
			continue // every job taken was one the server had to end
		}
		if ctx.Err() != nil {
			// The agent hung up: nobody would get them.
			held := make([]job.Job, len(cs))
			for i, c := range cs {
				held[i] = c.Job
			}
			s.giveBack(ctx, held, ctx.Err())
			return nil, ctx.Err()
		}
		return cs, nil
	}
}

// claimBeside reports whether the claim that a batch of moves carries may
// go to the store beside its moves rather than after them: when none of
// its queues caps its running jobs. Side by side, the two writes share a
// commit when the store groups them, as a separate claim request's did;
// in order, they take two, one after the other. The order matters only to
// a capped queue, whose slot a final move of the batch may free for the
// claim; an agent's own slots are its own affair (the moves that free
// them are answered with the claim whatever the order).
func (s *Server) claimBeside(ctx context.Context, queues []string) bool {
	if len(queues) == 1 && queues[0] == api.AllQueues {
		return false
	}
	for _, name := range queues {
		q, err := s.claimedQueue(ctx, name)
		if err != nil || q.MaxRunning > 0 {
			return false
		}
	}
	return true
}

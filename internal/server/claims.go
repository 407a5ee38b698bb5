package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
)

// claimNow answers the claim that a POST /v1/transitions carries: as POST
// /v1/claims with a Wait of 0 would answer it (the same checks, queue
// order, leases and secrets), but with no job as an empty answer, not an
// error, and no waiting: the agent that sent it still has its own claim
// loop for when the piggyback finds nothing.
func (s *Server) claimNow(ctx context.Context, req api.Claim) ([]api.Claimed, error) {
	if req.Agent == "" || len(req.Queues) == 0 {
		return nil, fmt.Errorf("%w: claim: agent and queues are required", job.ErrInvalid)
	}
	if req.Max < 0 || req.Max > api.MaxClaim {
		return nil, fmt.Errorf("%w: claim: max %d: want 1 to %d", job.ErrInvalid, req.Max, api.MaxClaim)
	}
	asked, err := claimQueues(ctx, req.Queues)
	if err != nil {
		return nil, err
	}
	s.touch(ctx, req.Agent)
	queues, err := s.claimOrder(ctx, asked)
	if err != nil || len(queues) == 0 {
		return nil, err
	}
	js, err := s.store.ClaimN(ctx, store.ClaimRequest{Agent: req.Agent, Queues: queues, TTL: s.cfg.LeaseTTL, TokenID: callerTokenID(ctx)}, max(req.Max, 1))
	if errors.Is(err, job.ErrNoJob) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	cs, err := s.handOut(ctx, req.Agent, js)
	if err != nil {
		return nil, err
	}
	if len(cs) > 0 && ctx.Err() != nil {
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

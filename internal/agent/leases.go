package agent

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/client"
	"github.com/slipway-ml/slipway/internal/job"
)

// renewer keeps the leases of every job an agent holds: each is renewed at
// a third of its length, and all those due at about the same time go in one
// request, so that an agent following a thousand training jobs sends one
// request per tick, not a thousand, and keeps no goroutine per job for it.
type renewer struct {
	api   *client.Client
	agent string
	log   *slog.Logger

	mu     sync.Mutex
	leases map[string]*lease // by job id
	wake   chan struct{}     // a lease was added: look again at when the next is due
}

// lease is one held job's lease, as the renewer keeps it.
type lease struct {
	h     *held
	lost  context.CancelCauseFunc // ends the job's context with errLeaseLost
	every time.Duration
	due   time.Time
}

func newRenewer(c *client.Client, agent string, log *slog.Logger) *renewer {
	return &renewer{api: c, agent: agent, log: log, leases: map[string]*lease{}, wake: make(chan struct{}, 1)}
}

// add keeps h's lease, which expires at expires, until remove is called.
// lost is called when another holder took it; a user's cancel request
// reaches h.
func (r *renewer) add(h *held, lost context.CancelCauseFunc, expires time.Time) (remove func()) {
	every := max(time.Until(expires)/3, 10*time.Millisecond)
	l := &lease{h: h, lost: lost, every: every, due: time.Now().Add(every)}
	r.mu.Lock()
	r.leases[h.id] = l
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.leases[h.id] == l {
			delete(r.leases, h.id)
		}
	}
}

// run renews the leases as they fall due, until ctx ends.
func (r *renewer) run(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		if next, ok := r.nextDue(); ok {
			t.Reset(max(time.Until(next), 0))
		} else {
			t.Stop()
		}
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
			continue
		case <-t.C:
		}
		r.renewDue(ctx)
	}
}

// nextDue is when the earliest lease falls due; ok is false with none.
func (r *renewer) nextDue() (next time.Time, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.leases {
		if !ok || l.due.Before(next) {
			next, ok = l.due, true
		}
	}
	return next, ok
}

// renewDue renews, in one request, every lease due now or within half its
// period: renewing a little early lets leases taken at about the same time
// share their requests from then on.
func (r *renewer) renewDue(ctx context.Context) {
	now := time.Now()
	r.mu.Lock()
	var due []*lease
	for _, l := range r.leases {
		if !l.due.After(now.Add(l.every / 2)) {
			l.due = now.Add(l.every) // on failure, tried again then
			due = append(due, l)
		}
	}
	r.mu.Unlock()
	if len(due) == 0 {
		return
	}
	r.renewBatch(ctx, due)
}

// renewBatch renews leases in one request (one per api.MaxRenew).
func (r *renewer) renewBatch(ctx context.Context, leases []*lease) {
	for start := 0; start < len(leases); start += api.MaxRenew {
		part := leases[start:min(start+api.MaxRenew, len(leases))]
		refs := make([]api.LeaseRef, len(part))
		for i, l := range part {
			refs[i] = api.LeaseRef{Job: l.h.id, Token: l.h.token}
		}
		res, err := r.api.RenewLeases(ctx, r.agent, refs)
		if err != nil {
			if ctx.Err() == nil {
				r.log.Warn("renewing leases", "leases", len(refs), "err", err)
			}
			continue
		}
		for i, l := range part {
			r.settle(ctx, l, client.RenewError(res[i]), res[i].CancelRequested)
		}
	}
}

// settle acts on how one renewal went.
func (r *renewer) settle(ctx context.Context, l *lease, err error, cancelRequested bool) {
	switch {
	case errors.Is(err, job.ErrLeaseLost) || errors.Is(err, job.ErrNotFound):
		l.lost(errLeaseLost)
	case err != nil:
		if ctx.Err() == nil {
			l.h.log().Warn("renewing lease", "err", err)
		}
	case cancelRequested:
		l.h.cancelRequested()
	}
}

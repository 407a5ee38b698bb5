package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/metrics"
	"github.com/slipway-ml/slipway/internal/store"
)

// checkJob vets an enqueue request against its queue and returns the job to
// store. Config errors surface here, at launch, not when an agent runs it.
func (s *Server) checkJob(r *http.Request, req api.Enqueue) (job.Job, error) {
	if req.Queue == "" {
		return job.Job{}, fmt.Errorf("%w: queue: required", job.ErrInvalid)
	}
	if err := allowQueue(r.Context(), req.Queue); err != nil {
		return job.Job{}, err
	}
	q, err := s.store.GetQueue(r.Context(), req.Queue)
	if errors.Is(err, job.ErrNotFound) {
		return job.Job{}, fmt.Errorf("queue %q: %w (create it with `slipway queue create`)", req.Queue, job.ErrNotFound)
	}
	if err != nil {
		return job.Job{}, err
	}
	spec := req.Spec
	if len(req.Code) > api.MaxCodeSize {
		return job.Job{}, fmt.Errorf("%w: code: %d bytes, more than the limit of %d", job.ErrInvalid, len(req.Code), api.MaxCodeSize)
	}
	if len(req.Code) > 0 {
		sum := sha256.Sum256(req.Code)
		digest := "sha256:" + hex.EncodeToString(sum[:])
		if spec.CodeDigest != "" && spec.CodeDigest != digest {
			return job.Job{}, fmt.Errorf("%w: spec.code_digest: %s does not match the code sent (%s)", job.ErrInvalid, spec.CodeDigest, digest)
		}
		spec.CodeDigest, spec.CodeSize = digest, int64(len(req.Code))
	} else if spec.CodeDigest != "" {
		return job.Job{}, fmt.Errorf("%w: spec.code_digest: set, but no code was sent", job.ErrInvalid)
	}
	if err := spec.Validate(); err != nil {
		return job.Job{}, err
	}
	j := job.Job{ID: job.NewSortedID("j-"), Queue: q.Name, Priority: req.Priority, Spec: spec}
	if err := s.admit.CheckJob(q, j); err != nil {
		return job.Job{}, err
	}
	return j, nil
}

// claim answers POST /v1/claim: one job.
func (s *Server) claim(w http.ResponseWriter, r *http.Request) {
	cs, ok := s.claimJobs(w, r, false)
	if ok {
		writeJSON(w, http.StatusOK, cs[0])
	}
}

// claimMany answers POST /v1/claims: up to the claim's Max jobs.
func (s *Server) claimMany(w http.ResponseWriter, r *http.Request) {
	cs, ok := s.claimJobs(w, r, true)
	if ok {
		writeJSON(w, http.StatusOK, api.Claims{Claims: cs})
	}
}

// awaitWork waits for woken; false when the claim ends first: its
// deadline passed, the server drains, or its client hung up.
func (s *Server) awaitWork(ctx context.Context, woken <-chan struct{}, deadline <-chan time.Time) bool {
	s.waiting.Add(1)
	defer s.waiting.Add(-1)
	select {
	case <-woken:
		return true
	case <-deadline:
	case <-s.draining:
	case <-ctx.Done():
	}
	return false
}

// handOut readies the jobs just claimed for agent: each with its queue and
// secret values, less those the server ended at once (endUnrecoverable).
// When readying one fails, it answers those readied before, and gives that
// one and the rest back to their queues, so that none waits for its lease
// to expire; with none readied, it answers the error.
func (s *Server) handOut(ctx context.Context, agent string, js []job.Job) ([]api.Claimed, error) {
	cs := make([]api.Claimed, 0, len(js))
	for i, j := range js {
		c, lost, err := s.ready(ctx, j)
		if err != nil {
			s.giveBack(ctx, js[i:], err)
			if len(cs) == 0 {
				return nil, err
			}
			break
		}
		if lost {
			continue
		}
		metrics.Default.ObserveClaim(j.Queue, j.CreatedAt, j.UpdatedAt)
		if s.log.Enabled(ctx, slog.LevelInfo) {
			s.log.LogAttrs(ctx, slog.LevelInfo, "job claimed", slog.String("job", j.ID), slog.String("queue", j.Queue),
				slog.String("agent", agent), slog.Int("attempt", j.Attempt), slog.Bool("reattach", j.ExternalID != ""))
		}
		cs = append(cs, c)
	}
	if len(cs) > 0 {
		s.changes.fire()
	}
	return cs, nil
}

// ready readies one claimed job for its agent; lost is true when the
// server ended it at once.
func (s *Server) ready(ctx context.Context, j job.Job) (_ api.Claimed, lost bool, _ error) {
	q, err := s.claimedQueue(ctx, j.Queue)
	if err != nil {
		return api.Claimed{}, false, fmt.Errorf("reading the queue of claimed job %s: %w", j.ID, err)
	}
	if lost, err := s.endUnrecoverable(ctx, j, q); err != nil || lost {
		return api.Claimed{}, lost, err
	}
	vals, err := s.secrets.open(j)
	if err != nil {
		s.log.Error("opening a claimed job's secrets", "job", j.ID, "err", err)
	} else {
		s.secrets.remember(j.ID, vals)
	}
	return api.Claimed{Job: j, Queue: q, Secrets: vals}, false, nil
}

// giveBack returns claimed jobs that no agent will get to their queues at
// once, with their attempt, as a release does. It outlives the request:
// a client that hung up is a reason to give them back, not to stop.
func (s *Server) giveBack(ctx context.Context, js []job.Job, cause error) {
	ctx = context.WithoutCancel(ctx)
	for _, j := range js {
		if j.Lease == nil {
			continue
		}
		_, err := s.store.Transition(ctx, store.Update{JobID: j.ID, Token: j.Lease.Token, To: job.Queued,
			Reason: "claimed, but not handed to its agent", Actor: "server"})
		if err != nil {
			s.log.Error("giving back a claimed job not handed out; it waits for its lease to expire", "job", j.ID, "queue", j.Queue, "err", err)
			continue
		}
		s.log.Warn("claimed job given back: not handed to its agent", "job", j.ID, "queue", j.Queue, "attempt", j.Attempt, "err", cause)
	}
	s.work.fire()
	s.changes.fire()
}

// endUnrecoverable fails a just-claimed local-process job whose last holder
// went away after it began starting the process but before it recorded the
// process id: that process may have run, and with no id nobody can find it,
// so starting it again could run the attempt twice. It fails the job as
// lost instead, as the agent does for a local process it finds with an id
// but cannot re-attach to. SageMaker and container runs are not affected:
// their runners adopt the run by its deterministic name.
func (s *Server) endUnrecoverable(ctx context.Context, j job.Job, q job.Queue) (bool, error) {
	// A first claim (token 1) had no earlier holder to have gone away.
	if q.Resource != job.LocalProcess || j.ExternalID != "" || j.Lease == nil || j.Lease.Token <= 1 {
		return false, nil
	}
	full, err := s.store.GetJob(ctx, j.ID)
	if err != nil {
		return false, err
	}
	// The events end with ... → queued (the last holder let go) → claimed
	// (now), perhaps after claims that ended before their job moved
	// (claimed → queued: a claim the server failed to hand out, or whose
	// answer was lost and lease expired): those started nothing, so the
	// hand-back before them decides.
	evs := full.Events
	i := len(evs) - 2
	for i >= 2 && evs[i].From == job.Claimed && evs[i].To == job.Queued {
		i -= 2 // and the queued → claimed before it
	}
	if i < 1 || evs[i].To != job.Queued || evs[i].From != job.Submitting {
		return false, nil
	}
	reason := "lost track: its agent went away while starting it as a local process, before recording the process; " +
		"not started again, so that the attempt never runs twice"
	if _, err := s.store.Transition(ctx, store.Update{JobID: j.ID, Token: j.Lease.Token, To: job.Failed, Reason: reason, Actor: "server"}); err != nil {
		return false, fmt.Errorf("failing job %s whose local process was lost: %w", j.ID, err)
	}
	s.log.Warn("job lost: its local process may have started under an agent that went away", "job", j.ID, "queue", j.Queue, "attempt", j.Attempt)
	s.changes.fire()
	return true, nil
}

// claimOrder expands api.AllQueues into every queue, starting at a
// different one each time: round-robin for agents that serve them all.
func (s *Server) claimOrder(ctx context.Context, queues []string) ([]string, error) {
	if len(queues) != 1 || queues[0] != api.AllQueues {
		return queues, nil
	}
	qs, err := s.store.ListQueues(ctx)
	if err != nil || len(qs) == 0 {
		return nil, err
	}
	i := int(s.turn.Add(1) % uint64(len(qs)))
	names := make([]string, 0, len(qs))
	for _, q := range append(qs[i:], qs[:i]...) {
		names = append(names, q.Name)
	}
	return names, nil
}

func (s *Server) renew(w http.ResponseWriter, r *http.Request) {
	var req api.Renew
	if err := readJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	j, err := s.store.Renew(r.Context(), r.PathValue("id"), req.Token, holderOf(r.Context()), s.cfg.LeaseTTL)
	if err != nil {
		s.writeError(w, r, scopeRefused(r.Context(), r.PathValue("id"), "renew", err))
		return
	}
	if j.Lease != nil {
		s.touch(r.Context(), j.Lease.Agent)
	}
	writeJSON(w, http.StatusOK, j)
}

// renewWorkers bounds how many renewals of one batch run at once: enough
// for the SQLite store to commit them together, few enough to leave the
// PostgreSQL pool to others.
const renewWorkers = 8

// renewLeases renews every lease an agent lists, each on its own: one
// refused does not stop the others, and each gets its own answer. A lease
// is renewed only for the agent in the path that holds it (lease_lost
// otherwise, as for a missing job, so that the answers tell nothing of
// other agents' jobs), and, for a token scoped to queues, only in those
// queues (forbidden otherwise), as POST /v1/jobs/{id}/renew checks.
func (s *Server) renewLeases(w http.ResponseWriter, r *http.Request) {
	var req api.RenewLeases
	if err := readJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if len(req.Leases) > api.MaxRenew {
		s.writeError(w, r, fmt.Errorf("%w: renew: %d leases: want at most %d", job.ErrInvalid, len(req.Leases), api.MaxRenew))
		return
	}
	ctx := r.Context()
	agent := r.PathValue("id")
	out := make([]api.RenewedLease, len(req.Leases))
	var renewed atomic.Bool
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(renewWorkers, len(req.Leases)) {
		wg.Go(func() {
			for i := range next {
				l := req.Leases[i]
				out[i] = api.RenewedLease{Job: l.Job}
				j, err := s.renewHeld(ctx, agent, l)
				if err != nil {
					out[i].Error = &api.Error{Code: api.CodeOf(err), Message: err.Error()}
					continue
				}
				renewed.Store(true)
				if j.Lease != nil {
					out[i].ExpiresAt = j.Lease.ExpiresAt
				}
				out[i].CancelRequested = j.CancelRequested
			}
		})
	}
	for i := range req.Leases {
		next <- i
	}
	close(next)
	wg.Wait()
	// Only an agent that holds something is recorded as seen: a request
	// cannot touch another agent's id.
	if renewed.Load() {
		s.touch(ctx, agent)
	}
	writeJSON(w, http.StatusOK, api.RenewedLeases{Leases: out})
}

// renewHeld renews one lease of a batch for agent, its holder.
func (s *Server) renewHeld(ctx context.Context, agent string, l api.LeaseRef) (job.Job, error) {
	holder := holderOf(ctx)
	holder.Agent = agent
	j, err := s.store.Renew(ctx, l.Job, l.Token, holder, s.cfg.LeaseTTL)
	err = scopeRefused(ctx, l.Job, "renew", err)
	if errors.Is(err, job.ErrNotFound) {
		return job.Job{}, fmt.Errorf("renewing job %s for agent %s: %w", l.Job, agent, job.ErrLeaseLost)
	}
	return j, err
}

// transition answers POST /v1/jobs/{id}/transition: one job's move, as
// one of a batch (see moveJobs).
func (s *Server) transition(w http.ResponseWriter, r *http.Request) {
	var req api.Transition
	if err := readJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	m := s.moveJobs(r.Context(), []api.JobTransition{{Job: r.PathValue("id"), Transition: req}})[0]
	if m.err != nil {
		s.writeError(w, r, m.err)
		return
	}
	writeJSON(w, http.StatusOK, *m.job)
}

// retryPreempted queues a preempted job again as a new attempt, within the
// retry budget. The new attempt gets a new TrainingJobName but the same
// queue config, so a CheckpointConfig that does not name the attempt lets
// it resume from the checkpoints of the last.
func (s *Server) retryPreempted(ctx context.Context, j job.Job) job.Job {
	if j.Attempt >= s.cfg.MaxAttempts {
		s.log.Warn("preempted job out of attempts", "job", j.ID, "attempt", j.Attempt, "max_attempts", s.cfg.MaxAttempts)
		return j
	}
	reason := fmt.Sprintf("requeued after preemption as attempt %d of at most %d", j.Attempt+1, s.cfg.MaxAttempts)
	rj, err := s.store.Requeue(ctx, j.ID, reason)
	if err != nil {
		s.log.Error("requeueing preempted job", "job", j.ID, "err", err)
		return j
	}
	return rj
}

// release hands a held job back to its queue at once, keeping its attempt
// and external id: an agent shutting down gives its runs to the next agent
// without making it wait for the lease to expire.
func (s *Server) release(w http.ResponseWriter, r *http.Request) {
	var req api.Release
	if err := readJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	reason, _ := s.redactReport(r.Context(), r.PathValue("id"), req.Reason, nil)
	if reason == "" {
		reason = "released by its agent"
	}
	j, err := s.store.Transition(r.Context(), store.Update{JobID: r.PathValue("id"), Token: req.Token, To: job.Queued, Reason: reason,
		Holder: holderOf(r.Context())})
	if err != nil {
		s.writeError(w, r, scopeRefused(r.Context(), r.PathValue("id"), "release", err))
		return
	}
	s.log.Info("job released", "job", j.ID, "queue", j.Queue, "attempt", j.Attempt, "external_id", j.ExternalID)
	s.work.fire()
	s.changes.fire()
	writeJSON(w, http.StatusOK, j)
}

func (s *Server) appendLogs(w http.ResponseWriter, r *http.Request) {
	var req api.AppendLogs
	if err := readJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.redactLines(r.Context(), r.PathValue("id"), req.Lines)
	if err := s.store.AppendLogs(r.Context(), r.PathValue("id"), req.Token, holderOf(r.Context()), req.Lines); err != nil {
		s.writeError(w, r, scopeRefused(r.Context(), r.PathValue("id"), "log to", err))
		return
	}
	s.changes.fire()
	w.WriteHeader(http.StatusNoContent)
}

// readLogs answers the lines after ?after=, waiting up to ?wait= for some to
// arrive while the job is still going.
func (s *Server) readLogs(w http.ResponseWriter, r *http.Request) {
	after, errAfter := queryInt(r, "after", 0)
	attempt, errAttempt := queryInt(r, "attempt", 0)
	wait, errWait := s.queryWait(r)
	if err := errors.Join(errAfter, errAttempt, errWait); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.waitLogs(w, r, r.PathValue("id"), int(attempt), after, wait)
}

func (s *Server) waitLogs(w http.ResponseWriter, r *http.Request, id string, attempt int, after int64, wait time.Duration) {
	ctx := r.Context()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		changed := s.changes.wait()
		j, err := s.store.GetJob(ctx, id)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		lines, err := s.store.ReadLogs(ctx, id, attempt, after, 1000)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if len(lines) > 0 || j.State.Terminal() || wait == 0 {
			next := after
			if len(lines) > 0 {
				next = lines[len(lines)-1].Seq
			}
			writeJSON(w, http.StatusOK, api.Logs{Lines: lines, State: j.State, Next: next})
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			writeJSON(w, http.StatusOK, api.Logs{Lines: []job.LogLine{}, State: j.State, Next: after})
			return
		case <-s.draining:
			writeJSON(w, http.StatusOK, api.Logs{Lines: []job.LogLine{}, State: j.State, Next: after})
			return
		case <-ctx.Done():
			return
		}
	}
}

// touchEvery is how stale an agent's last-seen time may get: recording it
// is a durable write, too dear for every claim and renewal.
const touchEvery = 5 * time.Second

// touch records that agent was seen, at most once per touchEvery. An
// unregistered agent may still claim; its touch changes nothing.
func (s *Server) touch(ctx context.Context, agent string) {
	now := time.Now()
	if last, ok := s.touched.Load(agent); ok && now.Sub(last.(time.Time)) < touchEvery {
		return
	}
	s.touched.Store(agent, now)
	_ = s.store.TouchAgent(ctx, agent)
}

// queueTTL bounds how long a claim may answer with a queue as it was read
// earlier; updates and deletes through this server drop it at once.
const queueTTL = time.Second

type cachedQueue struct {
	q    job.Queue
	read time.Time
}

// claimedQueue returns the queue a claimed job came from, read from the
// store at most once per queueTTL: every claim answers with its queue, and
// reading it each time cost a sixth of a claim.
func (s *Server) claimedQueue(ctx context.Context, name string) (job.Queue, error) {
	if c, ok := s.queues.Load(name); ok && time.Since(c.(cachedQueue).read) < queueTTL {
		return c.(cachedQueue).q, nil
	}
	q, err := s.store.GetQueue(ctx, name)
	if err == nil {
		s.queues.Store(name, cachedQueue{q: q, read: time.Now()})
	}
	return q, err
}

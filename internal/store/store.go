// Package store is the seam between the server and its database: queues,
// jobs, leases, events, logs and agents. store/sqlite and store/postgres
// implement it and both pass the suite in store/storetest.
package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/slipway-ml/slipway/internal/job"
)

// Store keeps Slipway's state. Every method is safe for concurrent use, and
// every write is durable when it returns.
type Store interface {
	Queues
	Jobs
	Leases
	Logs
	Agents
	Tokens
	Close() error
}

// Queues keeps the named queues.
type Queues interface {
	// CreateQueue adds q; job.ErrExists when the name is taken.
	CreateQueue(ctx context.Context, q job.Queue) (job.Queue, error)
	// UpdateQueue replaces the queue's config; job.ErrNotFound when missing.
	UpdateQueue(ctx context.Context, q job.Queue) (job.Queue, error)
	GetQueue(ctx context.Context, name string) (job.Queue, error)
	ListQueues(ctx context.Context) ([]job.Queue, error)
	// DeleteQueue removes an empty queue and its finished jobs; job.ErrConflict
	// while it holds unfinished jobs.
	DeleteQueue(ctx context.Context, name string) error
}

// JobFilter selects jobs to list; zero fields match everything.
type JobFilter struct {
	Queue string
	// Queues, when not empty, keeps to jobs of one of these queues (a
	// token scoped to several), before the limit applies.
	Queues []string
	State  job.State
	Limit  int // at most this many, newest first; 0 means 1000
}

// Jobs keeps the jobs and their events.
type Jobs interface {
	// Enqueue stores a new queued job, with its code tarball when code is not
	// nil, and records the "queued" event. The job's ID, Queue, Priority,
	// Spec and IdempotencyKey come from j; the rest is set here.
	// job.ErrNotFound when the queue does not exist. When a job with
	// j.IdempotencyKey exists already, Enqueue returns it and stores nothing,
	// even when concurrent calls bring the same key: the caller tells the
	// two apart by the returned ID.
	Enqueue(ctx context.Context, j job.Job, code []byte) (job.Job, error)
	// GetJob returns a job with its events.
	GetJob(ctx context.Context, id string) (job.Job, error)
	// ListJobs returns jobs without their events.
	ListJobs(ctx context.Context, f JobFilter) ([]job.Job, error)
	// CountUnfinished counts the jobs not in a final state, by queue and
	// state; a queue or state with none is absent.
	CountUnfinished(ctx context.Context) (map[string]map[job.State]int, error)
	// Code returns the job's code tarball; job.ErrNotFound when it has none.
	Code(ctx context.Context, id string) ([]byte, error)
	// Cancel ends a queued job as canceled at once; for a held job it sets
	// CancelRequested so that its agent stops it. A job already ended is
	// returned unchanged.
	Cancel(ctx context.Context, id, reason string) (job.Job, error)
}

// ClaimRequest asks for the next job in any of Queues, tried in that order.
type ClaimRequest struct {
	Agent  string
	Queues []string
	TTL    time.Duration // how long the lease lasts unless renewed
	// TokenID is the API token claiming, recorded on each lease as
	// Lease.TokenID; empty when the server runs without tokens.
	TokenID string
}

// Holder names who acts under a lease. A field left empty is not checked.
type Holder struct {
	// Agent, when not empty, must be the agent that holds the lease.
	Agent string
	// TokenID, when not empty, must be the API token that claimed the
	// lease, unless the lease records none (claimed without tokens, or
	// before leases recorded them).
	TokenID string
	// Queues, when not empty, are the queues the caller's API token is
	// scoped to: the job must be in one of them, whoever holds its lease
	// (see CheckQueue).
	Queues []string
}

// CheckQueue returns job.ErrForbidden when h may not act on a job of
// queue: h is scoped to other queues. Stores call it inside their fenced
// writes before they check the lease, so that a scoped caller learns
// nothing of other queues' leases.
func CheckQueue(queue string, h Holder) error {
	if len(h.Queues) == 0 || slices.Contains(h.Queues, queue) {
		return nil
	}
	return fmt.Errorf("%w: the job's queue %s is not one of %s", job.ErrForbidden, queue, strings.Join(h.Queues, ", "))
}

// CheckHolder returns job.ErrLeaseLost, naming why, when l is not held by
// h; stores call it inside their fenced writes.
func CheckHolder(l *job.Lease, h Holder) error {
	switch {
	case h.Agent != "" && l.Agent != h.Agent:
		return fmt.Errorf("held by another agent than %s: %w", h.Agent, job.ErrLeaseLost)
	case h.TokenID != "" && l.TokenID != "" && l.TokenID != h.TokenID:
		return fmt.Errorf("claimed with another API token than %s: %w", h.TokenID, job.ErrLeaseLost)
	}
	return nil
}

// Update moves a held job to a new state. It is applied only when Token is
// the job's current lease token and the lease is still held.
type Update struct {
	JobID      string
	Token      int64
	To         job.State
	Reason     string
	ExternalID string            // set when not empty; never cleared
	Image      string            // set when not empty: the image the job runs
	Outputs    map[string]string // merged into the job's outputs
	Actor      string
	// Holder is who makes the update: when it names an API token, that
	// token must be the one that claimed the lease, and when it names
	// queues, the job must be in one of them (see CheckHolder, CheckQueue).
	Holder Holder
}

// Moved is how one update of a Transitions went: the job as it left it,
// or the error that refused it (job.ErrLeaseLost, job.ErrConflict, ...).
type Moved struct {
	Job job.Job
	Err error
}

// MaxTransitions is the most updates one Transitions applies.
const MaxTransitions = 256

// ValidateTransitions checks a batch of updates: at most MaxTransitions.
func ValidateTransitions(us []Update) error {
	if len(us) > MaxTransitions {
		return fmt.Errorf("%w: transitions: %d updates: want at most %d", job.ErrInvalid, len(us), MaxTransitions)
	}
	return nil
}

// Leases claims jobs and guards every change to a held job.
type Leases interface {
	// Claim takes the first queued job of the highest priority in the first
	// of req.Queues that has one, oldest first, bumps its lease token and
	// moves it to claimed. A job's first claim gets token 1, and every
	// later claim a greater one. job.ErrNoJob when every queue is empty.
	Claim(ctx context.Context, req ClaimRequest) (job.Job, error)
	// ClaimN takes up to n jobs (n ≥ 1), each with its own lease token as
	// Claim would give it: an agent with several free slots fills them in
	// one request. It takes them round-robin, one per queue per pass over
	// req.Queues in that order (each queue's next job as Claim picks it,
	// within its max_running), so that no queue takes every slot while
	// another has work. job.ErrNoJob when every queue is empty.
	ClaimN(ctx context.Context, req ClaimRequest, n int) ([]job.Job, error)
	// Renew extends the lease by ttl from now; job.ErrLeaseLost when token is
	// stale, the lease was taken away, or the lease is not held by holder
	// (see CheckHolder: an agent renews only its own leases);
	// job.ErrForbidden, first, for a job outside holder.Queues.
	Renew(ctx context.Context, id string, token int64, holder Holder, ttl time.Duration) (job.Job, error)
	// Transition applies u; job.ErrLeaseLost for a stale token, a lease
	// not held by u.Holder (see CheckHolder), job.ErrForbidden, first,
	// for a job outside u.Holder's queues (see CheckQueue),
	// job.ErrConflict for a move the lifecycle does not allow. Moving to
	// a terminal state or back to queued releases the lease. Moving back
	// to queued is how an agent hands a job over at once (a release): it
	// keeps the attempt and external id, so that the next holder
	// re-attaches.
	Transition(ctx context.Context, u Update) (job.Job, error)
	// Transitions applies each of us as Transition would, in order, in one
	// transaction where the store can: one commit for an agent's many
	// reports. Each update succeeds or fails on its own (a stale token
	// refuses that one, not the others), and its result is at its index;
	// the error is for the batch as a whole (the store closed, a failed
	// commit), when none applied. job.ErrInvalid for more than
	// MaxTransitions updates.
	Transitions(ctx context.Context, us []Update) ([]Moved, error)
	// Requeue starts a new attempt of a failed or preempted job; the new
	// attempt keeps no external id.
	Requeue(ctx context.Context, id, reason string) (job.Job, error)
	// ExpireLeases returns every job whose lease ended before now to its
	// queue, keeping its attempt and external id so that the next holder
	// re-attaches rather than runs it again, and returns their ids.
	ExpireLeases(ctx context.Context, now time.Time) ([]string, error)
}

// Logs keeps each job's output, per attempt.
type Logs interface {
	// AppendLogs adds lines to the job's current attempt; it needs the
	// current lease token like any update, and a lease held by holder
	// (see CheckHolder) of a job in holder.Queues (see CheckQueue).
	AppendLogs(ctx context.Context, id string, token int64, holder Holder, lines []job.LogLine) error
	// ReadLogs returns up to limit lines with Seq > after, in order, of every
	// attempt when attempt is 0.
	ReadLogs(ctx context.Context, id string, attempt int, after int64, limit int) ([]job.LogLine, error)
}

// Agents keeps the registered agents.
type Agents interface {
	// RegisterAgent adds or replaces the agent with a.ID.
	RegisterAgent(ctx context.Context, a job.Agent) (job.Agent, error)
	// TouchAgent records that the agent was seen now.
	TouchAgent(ctx context.Context, id string) error
	ListAgents(ctx context.Context) ([]job.Agent, error)
}

// Tokens keeps the API tokens, by id, with only the hash of each secret.
type Tokens interface {
	// CreateToken stores t; job.ErrExists when its id is taken.
	CreateToken(ctx context.Context, t job.Token) (job.Token, error)
	// GetToken returns the token with id, its Hash included;
	// job.ErrNotFound when there is none or it was revoked.
	GetToken(ctx context.Context, id string) (job.Token, error)
	// ListTokens returns every token, oldest first, without hashes.
	ListTokens(ctx context.Context) ([]job.Token, error)
	// RevokeToken deletes a token; job.ErrNotFound when there is none.
	RevokeToken(ctx context.Context, id string) error
}

// MaxClaim is the most jobs one ClaimN may take.
const MaxClaim = 256

// ValidateClaim checks a claim of up to n jobs: an agent, a lease that
// lasts, and 1 ≤ n ≤ MaxClaim.
func ValidateClaim(req ClaimRequest, n int) error {
	switch {
	case req.Agent == "":
		return fmt.Errorf("%w: claim: agent is empty", job.ErrInvalid)
	case req.TTL <= 0:
		return fmt.Errorf("%w: claim: lease ttl %v: want > 0", job.ErrInvalid, req.TTL)
	case n < 1 || n > MaxClaim:
		return fmt.Errorf("%w: claim: %d jobs: want 1 to %d", job.ErrInvalid, n, MaxClaim)
	}
	return nil
}

// MaxIdempotencyKey is the longest Idempotency-Key a job may be enqueued with.
const MaxIdempotencyKey = 255

// ValidateIdempotencyKey checks an enqueue's key: empty (none), or up to
// MaxIdempotencyKey printable ASCII characters.
func ValidateIdempotencyKey(key string) error {
	if len(key) > MaxIdempotencyKey {
		return fmt.Errorf("%w: idempotency key: %d bytes, want at most %d", job.ErrInvalid, len(key), MaxIdempotencyKey)
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return fmt.Errorf("%w: idempotency key: byte %d is %#x, want printable ASCII", job.ErrInvalid, i, key[i])
		}
	}
	return nil
}

// ValidateQueue checks what every store refuses in a new queue: its name,
// resource, and the settings ValidateQueueSettings checks.
func ValidateQueue(q job.Queue) error {
	if err := job.ValidateQueueName(q.Name); err != nil {
		return err
	}
	if _, err := job.ParseResource(string(q.Resource)); err != nil {
		return err
	}
	return ValidateQueueSettings(q)
}

// ValidateQueueSettings checks what an update may change: the config is
// JSON, the policy is sound, the cap on held jobs is not negative.
func ValidateQueueSettings(q job.Queue) error {
	if len(q.Config) > 0 && !json.Valid(q.Config) {
		return fmt.Errorf("%w: queue %s: config is not valid JSON", job.ErrInvalid, q.Name)
	}
	if err := q.Policy.Validate(); err != nil {
		return err
	}
	return ValidateMaxRunning(q)
}

// ValidateMaxRunning checks a queue's cap on held jobs: 0 (none) or more.
func ValidateMaxRunning(q job.Queue) error {
	if q.MaxRunning < 0 {
		return fmt.Errorf("%w: queue %s: max_running %d: want 0 (no limit) or more", job.ErrInvalid, q.Name, q.MaxRunning)
	}
	return nil
}

// Unfinished lists the states that are not final, for CountUnfinished.
func Unfinished() []string {
	var out []string
	for _, st := range job.States {
		if !st.Terminal() {
			out = append(out, string(st))
		}
	}
	return out
}

// AddCount adds n jobs of queue in state to counts, for CountUnfinished.
func AddCount(counts map[string]map[job.State]int, queue string, state job.State, n int) {
	if counts[queue] == nil {
		counts[queue] = map[job.State]int{}
	}
	counts[queue][state] += n
}

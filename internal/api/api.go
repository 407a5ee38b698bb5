// Package api is the wire format of Slipway's HTTP API: the request and
// answer bodies that internal/server reads and writes and internal/client
// sends, and the error codes that carry job's sentinel errors across.
package api

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/slipway-ml/slipway/internal/job"
)

// MaxCodeSize caps a job's code tarball, as sent by `launch --dir`.
const MaxCodeSize = 64 << 20

// CreateQueue is the body of POST /v1/queues and PUT /v1/queues/{name}.
type CreateQueue struct {
	Name     string          `json:"name"`
	Resource job.Resource    `json:"resource"`
	Config   json.RawMessage `json:"config,omitempty"`
	Vars     []string        `json:"vars,omitempty"` // {{name}} declarations: name:type[:min:max|:enum=a,b][=default]
	// MaxRunning caps the queue's jobs held at once across every agent; 0
	// means no cap. On an update, absent keeps the queue's current cap.
	MaxRunning *int `json:"max_running,omitempty"`
	// Policy is what the queue's jobs may ask for; on an update, absent
	// keeps the queue's current policy and an empty one ({}) removes it.
	Policy *job.Policy `json:"policy,omitempty"`
}

// Enqueue is the body of POST /v1/jobs.
type Enqueue struct {
	Queue    string       `json:"queue"`
	Priority job.Priority `json:"priority"`
	Spec     job.Spec     `json:"spec"`
	Code     []byte       `json:"code,omitempty"` // gzipped tarball, base64 in JSON
	// Secrets are secret values by name (launch --secret NAME=VALUE): the
	// server seals them into Spec.Secrets and never stores them in plaintext.
	Secrets map[string]string `json:"secrets,omitempty"`
}

// IdempotencyKeyHeader names the request header of POST /v1/jobs that
// makes an enqueue safe to repeat: the first request with a key creates the
// job (201 Created), every later one answers that same job (200 OK).
const IdempotencyKeyHeader = "Idempotency-Key"

// AllQueues, as the only queue of a claim, asks for a job in any queue.
const AllQueues = "*"

// Claim is the body of POST /v1/claim. The server holds the request up to
// Wait for a job to arrive, and answers 204 No Content when none did.
type Claim struct {
	Agent  string        `json:"agent"`
	Queues []string      `json:"queues"`
	Wait   time.Duration `json:"wait"`
	// Max is how many jobs POST /v1/claims may answer with, at most
	// MaxClaim; 0 means 1. POST /v1/claim takes one job whatever it is.
	Max int `json:"max,omitempty"`
}

// MaxClaim is the most jobs one POST /v1/claims takes.
const MaxClaim = 64

// Claims is the answer to POST /v1/claims: one or more jobs, each with its
// own lease, for an agent with as many free slots. The server holds the
// request like POST /v1/claim, and answers 204 No Content when no job came.
type Claims struct {
	Claims []Claimed `json:"claims"`
}

// Claimed is the answer to a successful claim: the job, with the lease in
// it, and its queue, whose resource and config tell the agent how to run it.
type Claimed struct {
	Job   job.Job   `json:"job"`
	Queue job.Queue `json:"queue"`
	// Secrets are the values of the job's sealed secrets, by name: only
	// the claiming agent ever gets them, to materialise inside the run
	// (a file, never a training job's plaintext Environment).
	Secrets map[string]string `json:"secrets,omitempty"`
}

// Renew is the body of POST /v1/jobs/{id}/renew.
type Renew struct {
	Token int64 `json:"token"`
}

// RenewLeases is the body of POST /v1/agents/{id}/renew: every lease an
// agent holds, renewed in one request rather than one each.
type RenewLeases struct {
	Leases []LeaseRef `json:"leases"`
}

// LeaseRef names one lease: the job and the token its holder has.
type LeaseRef struct {
	Job   string `json:"job"`
	Token int64  `json:"token"`
}

// MaxRenew is the most leases one POST /v1/agents/{id}/renew renews.
const MaxRenew = 10000

// RenewedLeases answers POST /v1/agents/{id}/renew: one result per lease
// asked for, in the same order.
type RenewedLeases struct {
	Leases []RenewedLease `json:"leases"`
}

// RenewedLease is how the renewal of one lease went: its new expiry and
// whether a user asked to cancel the job, or the error (lease_lost when
// another agent holds the job now) that refused it.
type RenewedLease struct {
	Job             string    `json:"job"`
	ExpiresAt       time.Time `json:"expires_at,omitzero"`
	CancelRequested bool      `json:"cancel_requested,omitempty"`
	Error           *Error    `json:"error,omitempty"`
}

// Transition is the body of POST /v1/jobs/{id}/transition.
type Transition struct {
	Token      int64             `json:"token"`
	To         job.State         `json:"to"`
	Reason     string            `json:"reason"`
	ExternalID string            `json:"external_id,omitempty"`
	Image      string            `json:"image,omitempty"`
	Outputs    map[string]string `json:"outputs,omitempty"`
}

// Transitions is the body of POST /v1/transitions: many held jobs' moves
// in one request (an agent's reports that came due together), each under
// its own lease token, each checked and applied as POST
// /v1/jobs/{id}/transition would.
//
// Claim, when set, also claims jobs in the same request: an agent whose
// moves end jobs asks for as many new ones as the ends free slots, so that
// it needs no claim request of its own while its queues have work. The
// claim is answered as POST /v1/claims would answer it with a Wait of 0
// (its Wait is ignored): the same queues, rotation, scope and secrets, in
// Moves.Claims; a refused claim is answered in Moves.ClaimError, and never
// refuses the moves. When a queue it asks for caps its running jobs
// (max_running, or "*"), the claim is made after the moves, so that a slot
// of the queue they free goes to it; otherwise beside them, sharing their
// commit where the store can.
type Transitions struct {
	Transitions []JobTransition `json:"transitions"`
	Claim       *Claim          `json:"claim,omitempty"`
}

// JobTransition is one job's move in a Transitions.
type JobTransition struct {
	Job string `json:"job"`
	Transition
}

// MaxTransitions is the most moves one POST /v1/transitions carries.
const MaxTransitions = 256

// Moves answers POST /v1/transitions: one result per move asked for, in
// the same order. With a claim in the request, Claims are the jobs it took (none when no
// job waited), or ClaimError says why it was refused.
type Moves struct {
	Moves      []Move    `json:"moves"`
	Claims     []Claimed `json:"claims,omitempty"`
	ClaimError *Error    `json:"claim_error,omitempty"`
}

// Move is how one move of a Transitions went: the state it left the job
// in, or the error that refused this move alone (lease_lost, conflict,
// invalid, forbidden...), as POST /v1/jobs/{id}/transition would have
// answered it. The state only, not the whole job: a job's spec is most of
// its weight, and the agent that moved it has it already.
type Move struct {
	State job.State `json:"state,omitempty"`
	Error *Error    `json:"error,omitempty"`
}

// Release is the body of POST /v1/jobs/{id}/release: the holder hands the
// job back to its queue at once, keeping its attempt and external id, so
// that the next agent re-attaches to the run rather than waiting for the
// lease to expire.
type Release struct {
	Token  int64  `json:"token"`
	Reason string `json:"reason"`
}

// AppendLogs is the body of POST /v1/jobs/{id}/logs.
type AppendLogs struct {
	Token int64         `json:"token"`
	Lines []job.LogLine `json:"lines"`
}

// Logs is the answer to GET /v1/jobs/{id}/logs: lines after the asked
// sequence number, and the job's state when they were read, so that a
// follower knows when to stop.
type Logs struct {
	Lines []job.LogLine `json:"lines"`
	State job.State     `json:"state"`
	Next  int64         `json:"next"` // pass as ?after= to read on
}

// CreateToken is the body of POST /v1/tokens (admins only).
type CreateToken struct {
	Role   job.Role `json:"role"`
	Queues []string `json:"queues,omitempty"` // none: every queue
	Name   string   `json:"name,omitempty"`
}

// CreatedToken answers POST /v1/tokens: the token and its secret, which the
// server shows this once and keeps only as a hash.
type CreatedToken struct {
	job.Token
	Secret string `json:"secret"`
}

// Error is the body of every answer with a status of 400 or more.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// The error codes, one per sentinel of package job.
var codes = []struct {
	code string
	err  error
}{
	{"not_found", job.ErrNotFound},
	{"exists", job.ErrExists},
	{"invalid", job.ErrInvalid},
	{"lease_lost", job.ErrLeaseLost},
	{"conflict", job.ErrConflict},
	{"unauthorized", job.ErrUnauthorized},
	{"forbidden", job.ErrForbidden},
}

// CodeOf returns the code for err, "internal" for an error with no sentinel.
func CodeOf(err error) string {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return "internal"
}

// ErrOf returns the sentinel for a code, nil for an unknown one.
func ErrOf(code string) error {
	for _, c := range codes {
		if c.code == code {
			return c.err
		}
	}
	return nil
}

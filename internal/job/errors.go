package job

import "errors"

// Sentinel errors shared by every layer; the HTTP API maps each to a status
// code and the client maps it back, so errors.Is works across the wire.
var (
	// ErrNotFound: no queue, job or agent by that name.
	ErrNotFound = errors.New("not found")
	// ErrExists: a queue by that name already exists.
	ErrExists = errors.New("already exists")
	// ErrInvalid: the input is malformed; the wrapping message names the field.
	ErrInvalid = errors.New("invalid")
	// ErrLeaseLost: the caller's lease token is not the job's current one.
	ErrLeaseLost = errors.New("lease lost")
	// ErrConflict: the job or queue is not in a state that allows the request.
	ErrConflict = errors.New("conflict")
	// ErrNoJob: no job is waiting in the queues asked for.
	ErrNoJob = errors.New("no job available")
)

// Access errors: the HTTP API answers 401 and 403 for them.
var (
	// ErrUnauthorized: the request carries no token, or one that is
	// unknown or revoked.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden: the token is valid but its role or queues do not allow
	// the request.
	ErrForbidden = errors.New("forbidden")
)

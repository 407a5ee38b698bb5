// Package client is the typed HTTP client of Slipway's API, used by the CLI
// and the agent. Errors from the server come back wrapping the same
// sentinels of package job, so errors.Is works across the wire.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/job"
)

// DefaultServer is where `slipway up` listens unless told otherwise.
const DefaultServer = "http://127.0.0.1:7070"

// Client talks to one Slipway server.
type Client struct {
	base     string
	http     *http.Client
	token    string
	progress func(sent, total int64)
	reports  reporter // Report's moves waiting to be sent
}

// Option changes how a Client talks to its server.
type Option func(*Client)

// WithToken makes every request carry token, as "Authorization: Bearer";
// an empty token sends none.
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// WithUploadProgress calls fn as the body of a large request (a job's
// code) is sent, with the bytes sent so far and the total.
func WithUploadProgress(fn func(sent, total int64)) Option {
	return func(c *Client) { c.progress = fn }
}

// progressMin is the smallest body whose upload reports progress.
const progressMin = 256 << 10

// progressReader reports the bytes read through it, every progressStep.
type progressReader struct {
	r           io.Reader
	sent, total int64
	reported    int64
	fn          func(sent, total int64)
}

const progressStep = 64 << 10

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.sent += int64(n)
	if p.sent-p.reported >= progressStep || p.sent == p.total {
		p.reported = p.sent
		p.fn(p.sent, p.total)
	}
	return n, err
}

// New returns a client for the server at base, a URL like
// http://127.0.0.1:7070; a bare host:port is taken as http.
func New(base string, opts ...Option) (*Client, error) {
	if base == "" {
		base = DefaultServer
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(base)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("%w: server URL %q: want http(s)://HOST:PORT", job.ErrInvalid, base)
	}
	c := &Client{base: strings.TrimRight(u.String(), "/"), http: &http.Client{Transport: newTransport()}}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// maxIdleConns is how many kept-alive connections a Client holds to its
// server. An agent has a request in flight per job it runs, plus its claim;
// http.DefaultTransport keeps only two per host, so an agent running more
// jobs than that opened and closed a connection for most of its requests.
const maxIdleConns = 64

// newTransport is http.DefaultTransport's settings with a pool of
// kept-alive connections the size of an agent's concurrency.
func newTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = maxIdleConns
	t.MaxIdleConnsPerHost = maxIdleConns
	return t
}

// URL returns the server's base URL.
func (c *Client) URL() string { return c.base }

// ServerError is an error answer from the server. It wraps the sentinel of
// package job that its code names.
type ServerError struct {
	Status  int
	Code    string
	Message string
}

func (e *ServerError) Error() string { return e.Message }

func (e *ServerError) Unwrap() error { return api.ErrOf(e.Code) }

// do sends a request with body in as JSON and decodes the answer into out.
// It reports whether the server answered 204 No Content.
func (c *Client) do(ctx context.Context, method, path string, in, out any) (noContent bool, err error) {
	status, err := c.send(ctx, method, path, nil, in, out)
	return status == http.StatusNoContent, err
}

// send is do with extra request headers, answering the status code.
func (c *Client) send(ctx context.Context, method, path string, header http.Header, in, out any) (status int, err error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, fmt.Errorf("encoding request: %w", err)
		}
		body = bytes.NewReader(b)
		if c.progress != nil && len(b) >= progressMin {
			body = &progressReader{r: body, total: int64(len(b)), fn: c.progress}
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return 0, err
	}
	if pr, ok := body.(*progressReader); ok {
		req.ContentLength = pr.total
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("calling slipway server at %s: %w", c.base, err)
	}
	defer func() {
		// Read to the end, so that the connection is kept alive for the
		// next request rather than closed: a JSON decoder stops at the value.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
	}()
	if resp.StatusCode >= 400 {
		var e api.Error
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(b, &e) != nil || e.Message == "" {
			e = api.Error{Code: "internal", Message: fmt.Sprintf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))}
		}
		return resp.StatusCode, &ServerError{Status: resp.StatusCode, Code: e.Code, Message: e.Message}
	}
	if resp.StatusCode == http.StatusNoContent || out == nil {
		return resp.StatusCode, nil
	}
	if b, ok := out.(*[]byte); ok {
		*b, err = io.ReadAll(resp.Body)
		return resp.StatusCode, err
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return resp.StatusCode, fmt.Errorf("decoding answer to %s %s: %w", method, path, err)
	}
	return resp.StatusCode, nil
}

// Health reports whether the server answers.
func (c *Client) Health(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodGet, "/healthz", nil, nil)
	return err
}

// CreateQueue creates a queue.
func (c *Client) CreateQueue(ctx context.Context, q api.CreateQueue) (job.Queue, error) {
	var out job.Queue
	_, err := c.do(ctx, http.MethodPost, "/v1/queues", q, &out)
	return out, err
}

// UpdateQueue replaces a queue's config.
func (c *Client) UpdateQueue(ctx context.Context, q api.CreateQueue) (job.Queue, error) {
	var out job.Queue
	_, err := c.do(ctx, http.MethodPut, "/v1/queues/"+url.PathEscape(q.Name), q, &out)
	return out, err
}

// Queue returns one queue.
func (c *Client) Queue(ctx context.Context, name string) (job.Queue, error) {
	var out job.Queue
	_, err := c.do(ctx, http.MethodGet, "/v1/queues/"+url.PathEscape(name), nil, &out)
	return out, err
}

// Queues lists the queues.
func (c *Client) Queues(ctx context.Context) ([]job.Queue, error) {
	var out []job.Queue
	_, err := c.do(ctx, http.MethodGet, "/v1/queues", nil, &out)
	return out, err
}

// DeleteQueue deletes a queue that holds no unfinished job.
func (c *Client) DeleteQueue(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/queues/"+url.PathEscape(name), nil, nil)
	return err
}

// Enqueue adds a job; it returns once the job is durably stored.
func (c *Client) Enqueue(ctx context.Context, e api.Enqueue) (job.Job, error) {
	var out job.Job
	_, err := c.do(ctx, http.MethodPost, "/v1/jobs", e, &out)
	return out, err
}

// EnqueueOnce adds a job under an idempotency key: however often it is
// called with one key, even at once or after a lost answer, the server
// keeps one job for it. created reports whether this call made the job.
// An unreachable server is tried again (a few times, waiting between), which
// the key makes safe.
func (c *Client) EnqueueOnce(ctx context.Context, key string, e api.Enqueue) (j job.Job, created bool, err error) {
	if key == "" {
		return job.Job{}, false, fmt.Errorf("%w: idempotency key: empty", job.ErrInvalid)
	}
	h := http.Header{api.IdempotencyKeyHeader: {key}}
	wait := 200 * time.Millisecond
	for try := 1; ; try++ {
		var status int
		status, err = c.send(ctx, http.MethodPost, "/v1/jobs", h, e, &j)
		if err == nil {
			return j, status == http.StatusCreated, nil
		}
		if !IsUnreachable(err) || try == 5 || ctx.Err() != nil {
			return job.Job{}, false, err
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return job.Job{}, false, err
		}
		wait *= 2
	}
}

// Job returns a job with its events.
func (c *Client) Job(ctx context.Context, id string) (job.Job, error) {
	var out job.Job
	_, err := c.do(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(id), nil, &out)
	return out, err
}

// Jobs lists jobs, newest first; empty queue or state match all.
func (c *Client) Jobs(ctx context.Context, queue string, state job.State, limit int) ([]job.Job, error) {
	v := url.Values{}
	if queue != "" {
		v.Set("queue", queue)
	}
	if state != "" {
		v.Set("state", string(state))
	}
	if limit > 0 {
		v.Set("limit", fmt.Sprint(limit))
	}
	var out []job.Job
	_, err := c.do(ctx, http.MethodGet, "/v1/jobs?"+v.Encode(), nil, &out)
	return out, err
}

// Code returns a job's code tarball.
func (c *Client) Code(ctx context.Context, id string) ([]byte, error) {
	var out []byte
	_, err := c.do(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(id)+"/code", nil, &out)
	return out, err
}

// Cancel cancels a job: at once when queued, through its agent when held.
func (c *Client) Cancel(ctx context.Context, id string) (job.Job, error) {
	var out job.Job
	_, err := c.do(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(id)+"/cancel", nil, &out)
	return out, err
}

// Logs returns a job's log lines after sequence number after (of every
// attempt when attempt is 0), waiting up to wait for one to arrive.
func (c *Client) Logs(ctx context.Context, id string, attempt int, after int64, wait time.Duration) (api.Logs, error) {
	v := url.Values{"after": {fmt.Sprint(after)}}
	if attempt > 0 {
		v.Set("attempt", fmt.Sprint(attempt))
	}
	if wait > 0 {
		v.Set("wait", wait.String())
	}
	var out api.Logs
	_, err := c.do(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(id)+"/logs?"+v.Encode(), nil, &out)
	return out, err
}

// RegisterAgent announces an agent to the server.
func (c *Client) RegisterAgent(ctx context.Context, a job.Agent) (job.Agent, error) {
	var out job.Agent
	_, err := c.do(ctx, http.MethodPost, "/v1/agents", a, &out)
	return out, err
}

// Agents lists the registered agents.
func (c *Client) Agents(ctx context.Context) ([]job.Agent, error) {
	var out []job.Agent
	_, err := c.do(ctx, http.MethodGet, "/v1/agents", nil, &out)
	return out, err
}

// Claim waits up to req.Wait for a job in req.Queues; job.ErrNoJob when none
// came.
func (c *Client) Claim(ctx context.Context, req api.Claim) (api.Claimed, error) {
	var out api.Claimed
	none, err := c.do(ctx, http.MethodPost, "/v1/claim", req, &out)
	if err == nil && none {
		err = job.ErrNoJob
	}
	return out, err
}

// ClaimMany waits up to req.Wait for jobs in req.Queues and takes up to
// req.Max of them at once, each with its own lease; job.ErrNoJob when none
// came.
func (c *Client) ClaimMany(ctx context.Context, req api.Claim) ([]api.Claimed, error) {
	var out api.Claims
	none, err := c.do(ctx, http.MethodPost, "/v1/claims", req, &out)
	if err == nil && (none || len(out.Claims) == 0) {
		err = job.ErrNoJob
	}
	return out.Claims, err
}

// Renew extends a lease; job.ErrLeaseLost when it is no longer held.
func (c *Client) Renew(ctx context.Context, id string, token int64) (job.Job, error) {
	var out job.Job
	_, err := c.do(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(id)+"/renew", api.Renew{Token: token}, &out)
	return out, err
}

// RenewLeases extends every lease in leases in one request, for agent; it
// answers one result per lease, in order, each with its own error.
func (c *Client) RenewLeases(ctx context.Context, agent string, leases []api.LeaseRef) ([]api.RenewedLease, error) {
	var out api.RenewedLeases
	_, err := c.do(ctx, http.MethodPost, "/v1/agents/"+url.PathEscape(agent)+"/renew", api.RenewLeases{Leases: leases}, &out)
	if err == nil && len(out.Leases) != len(leases) {
		err = fmt.Errorf("renewing %d leases: the server answered %d", len(leases), len(out.Leases))
	}
	return out.Leases, err
}

// RenewError returns the error that refused a renewal, wrapping the sentinel of
// package job its code names; nil when the lease was renewed.
func RenewError(l api.RenewedLease) error { return itemError(l.Error) }

// itemError is the error of one item of a batch answer, nil when e is:
// the request as a whole was answered 200 OK, and the refusal is the
// item's own.
func itemError(e *api.Error) error {
	if e == nil {
		return nil
	}
	return &ServerError{Status: http.StatusOK, Code: e.Code, Message: e.Message}
}

// Transition moves a held job to a new state.
func (c *Client) Transition(ctx context.Context, id string, t api.Transition) (job.Job, error) {
	var out job.Job
	_, err := c.do(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(id)+"/transition", t, &out)
	return out, err
}

// Transitions moves many held jobs in one request, each under its own
// lease token; it answers one result per move, in order, each refused or
// not on its own (see MoveError). Send sends an agent's moves this way.
func (c *Client) Transitions(ctx context.Context, ts []api.JobTransition) ([]api.Move, error) {
	out, err := c.TransitionsClaim(ctx, api.Transitions{Transitions: ts})
	return out.Moves, err
}

// TransitionsClaim is Transitions with the claim req may carry: the
// answer holds the jobs it took, or why it was refused (see
// api.Transitions.Claim).
func (c *Client) TransitionsClaim(ctx context.Context, req api.Transitions) (api.Moves, error) {
	// The answer's slices are made to size: decoding appends to them.
	out := api.Moves{Moves: make([]api.Move, 0, len(req.Transitions))}
	if req.Claim != nil {
		out.Claims = make([]api.Claimed, 0, max(req.Claim.Max, 1))
	}
	_, err := c.do(ctx, http.MethodPost, "/v1/transitions", req, &out)
	if err == nil && len(out.Moves) != len(req.Transitions) {
		err = fmt.Errorf("moving %d jobs: the server answered %d", len(req.Transitions), len(out.Moves))
	}
	return out, err
}

// MoveError returns the error that refused one move of Transitions,
// wrapping the sentinel of package job its code names; nil when it landed.
func MoveError(m api.Move) error { return itemError(m.Error) }

// Release hands a held job back to its queue at once, keeping its attempt
// and external id, so that the next agent re-attaches to its run;
// job.ErrLeaseLost when token no longer holds it.
func (c *Client) Release(ctx context.Context, id string, token int64, reason string) (job.Job, error) {
	var out job.Job
	_, err := c.do(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(id)+"/release", api.Release{Token: token, Reason: reason}, &out)
	return out, err
}

// AppendLogs adds log lines to a held job.
func (c *Client) AppendLogs(ctx context.Context, id string, token int64, lines []job.LogLine) error {
	_, err := c.do(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(id)+"/logs", api.AppendLogs{Token: token, Lines: lines}, nil)
	return err
}

// CreateToken makes an API token (admins only). Its secret is in the
// answer, this once; the server keeps only its hash.
func (c *Client) CreateToken(ctx context.Context, req api.CreateToken) (api.CreatedToken, error) {
	var out api.CreatedToken
	_, err := c.do(ctx, http.MethodPost, "/v1/tokens", req, &out)
	return out, err
}

// Tokens lists the API tokens, without secrets (admins only).
func (c *Client) Tokens(ctx context.Context) ([]job.Token, error) {
	var out []job.Token
	_, err := c.do(ctx, http.MethodGet, "/v1/tokens", nil, &out)
	return out, err
}

// Self returns the token this client sends: its id, role and queues.
func (c *Client) Self(ctx context.Context) (job.Token, error) {
	var out job.Token
	_, err := c.do(ctx, http.MethodGet, "/v1/tokens/self", nil, &out)
	return out, err
}

// RevokeToken deletes an API token: requests with it fail from now on.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/tokens/"+url.PathEscape(id), nil, nil)
	return err
}

// IsUnreachable reports whether err means the server could not be reached
// at all, as opposed to an answer.
func IsUnreachable(err error) bool {
	var se *ServerError
	return err != nil && !errors.As(err, &se) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
)

// Who may call what, when Config.Auth is on.
//
// Every request but /healthz and the dashboard's static files carries a
// token: "Authorization: Bearer <secret>" for the API, or the cookie that
// /login?token=<secret> sets for the dashboard's pages. A token's role
// picks the routes it may call (access, below); a token scoped to queues
// acts only on those queues' jobs, which the handlers check with
// allowQueue, and the store inside its fenced write for the updates made
// under a lease (holderOf). The dashboard shows every queue, so its pages
// are for admin tokens only.

// sessionCookie holds a dashboard user's token; it is HttpOnly and
// SameSite=Strict, and the API does not read it (only the pages do), so a
// cross-site request cannot use it to change anything.
const sessionCookie = "slipway_session"

// open are the routes that need no token; the dashboard's static files
// (under /ui/static/) need none either.
var open = map[string]bool{
	"GET /healthz": true,
	"GET /login":   true,
	"/v1/":         true, // no such route: noRoute answers 404
}

// isOpen reports whether r needs no token.
func isOpen(r *http.Request, pattern string) bool {
	if open[pattern] {
		return true
	}
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) && strings.HasPrefix(r.URL.Path, "/ui/static/")
}

// access maps each API route, as its mux pattern, to the roles that may
// call it. A route that is not here is for admins only: queue and token
// management, the agent list and the dashboard.
var access = map[string][]job.Role{
	"GET /v1/queues":                {job.RoleSubmit, job.RoleAgent},
	"GET /v1/queues/{name}":         {job.RoleSubmit, job.RoleAgent},
	"POST /v1/jobs":                 {job.RoleSubmit},
	"GET /v1/jobs":                  {job.RoleSubmit, job.RoleAgent},
	"GET /v1/jobs/{id}":             {job.RoleSubmit, job.RoleAgent},
	"GET /v1/jobs/{id}/code":        {job.RoleSubmit, job.RoleAgent},
	"GET /v1/jobs/{id}/logs":        {job.RoleSubmit, job.RoleAgent},
	"POST /v1/jobs/{id}/cancel":     {job.RoleSubmit},
	"POST /v1/agents":               {job.RoleAgent},
	"POST /v1/claim":                {job.RoleAgent},
	"POST /v1/claims":               {job.RoleAgent},
	"POST /v1/jobs/{id}/renew":      {job.RoleAgent},
	"POST /v1/agents/{id}/renew":    {job.RoleAgent},
	"POST /v1/jobs/{id}/transition": {job.RoleAgent},
	"POST /v1/transitions":          {job.RoleAgent},
	"POST /v1/jobs/{id}/release":    {job.RoleAgent},
	"POST /v1/jobs/{id}/logs":       {job.RoleAgent},
	"GET /v1/tokens/self":           {job.RoleSubmit, job.RoleAgent},
}

type tokenKey struct{}

// tokenOf returns the token a request was authenticated with; ok is false
// when the server runs without auth.
func tokenOf(ctx context.Context) (job.Token, bool) {
	t, ok := ctx.Value(tokenKey{}).(job.Token)
	return t, ok
}

// callerTokenID is the id of the request's token, recorded on the leases
// it claims; empty when the server runs without auth.
func callerTokenID(ctx context.Context) string {
	t, _ := tokenOf(ctx)
	return t.ID
}

// holderOf is who a request acts as under a lease: its token, which must be
// the one that claimed the lease, and the queues it is scoped to, one of
// which must be the job's. The store checks both inside its fenced write.
// An admin token may act under any lease, and without auth nothing is
// checked.
func holderOf(ctx context.Context) store.Holder {
	t, ok := tokenOf(ctx)
	if !ok || t.Role == job.RoleAdmin {
		return store.Holder{}
	}
	return store.Holder{TokenID: t.ID, Queues: t.Queues}
}

// scopeRefused answers, as job.ErrForbidden, what the store refused to a
// token scoped to queues that acts (verb) under the lease of job id: a job
// of another queue, and a missing job too, so that the answer does not say
// which jobs exist. Any other error, and any error for an unscoped token,
// is returned as it is.
func scopeRefused(ctx context.Context, id, verb string, err error) error {
	t, ok := tokenOf(ctx)
	if !ok || len(t.Queues) == 0 || !errors.Is(err, job.ErrForbidden) && !errors.Is(err, job.ErrNotFound) {
		return err
	}
	return fmt.Errorf("%w: token %s may not %s job %s", job.ErrForbidden, t.ID, verb, id)
}

// allowQueue refuses, with job.ErrForbidden, a request whose token is
// scoped to other queues than queue.
func allowQueue(ctx context.Context, queue string) error {
	t, ok := tokenOf(ctx)
	if !ok || t.Allows(queue) {
		return nil
	}
	return fmt.Errorf("%w: token %s may not act on queue %s (its queues: %s)", job.ErrForbidden, t.ID, queue, strings.Join(t.Queues, ", "))
}

// claimQueues returns the queues a claim may take jobs from: those asked
// for, when the token allows each; the token's own queues for a claim of
// every queue ("*") by a scoped token.
func claimQueues(ctx context.Context, asked []string) ([]string, error) {
	t, ok := tokenOf(ctx)
	if !ok || len(t.Queues) == 0 {
		return asked, nil
	}
	if len(asked) == 1 && asked[0] == "*" {
		return slices.Clone(t.Queues), nil
	}
	for _, q := range asked {
		if err := allowQueue(ctx, q); err != nil {
			return nil, err
		}
	}
	return asked, nil
}

// jobFilterQueues narrows a job list to what the request's token may
// read: the queue asked for, which the token must allow, else the scoped
// token's queues.
func jobFilterQueues(ctx context.Context, f *store.JobFilter) error {
	t, ok := tokenOf(ctx)
	switch {
	case !ok || len(t.Queues) == 0:
		return nil
	case f.Queue != "":
		return allowQueue(ctx, f.Queue)
	}
	f.Queues = t.Queues
	return nil
}

// visibleQueues keeps the queues a request's token may read.
func visibleQueues(ctx context.Context, qs []job.Queue) []job.Queue {
	t, ok := tokenOf(ctx)
	if !ok || len(t.Queues) == 0 {
		return qs
	}
	return slices.DeleteFunc(qs, func(q job.Queue) bool { return !t.Allows(q.Name) })
}

// authenticate finds the token a request carries and checks it: the
// bearer token for the API, the session cookie for dashboard pages.
func (s *Server) authenticate(r *http.Request) (job.Token, error) {
	secret, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok && !strings.HasPrefix(r.URL.Path, "/v1/") {
		if c, err := r.Cookie(sessionCookie); err == nil {
			secret, ok = c.Value, true
		}
	}
	if !ok || secret == "" {
		return job.Token{}, fmt.Errorf("%w: no token: pass one with --token, SLIPWAY_TOKEN or the config file (Authorization: Bearer)", job.ErrUnauthorized)
	}
	id, err := job.TokenID(strings.TrimSpace(secret))
	if err != nil {
		return job.Token{}, err
	}
	t, err := s.store.GetToken(r.Context(), id)
	if errors.Is(err, job.ErrNotFound) {
		return job.Token{}, fmt.Errorf("%w: unknown or revoked token", job.ErrUnauthorized)
	}
	if err != nil {
		return job.Token{}, err
	}
	if !t.Matches(strings.TrimSpace(secret)) {
		return job.Token{}, fmt.Errorf("%w: unknown or revoked token", job.ErrUnauthorized)
	}
	t.Hash = ""
	return t, nil
}

// authorize checks that t's role may call the route pattern names, and for
// the routes of one job or queue, that t may act on that queue.
func (s *Server) authorize(r *http.Request, pattern string, t job.Token) error {
	if t.Role != job.RoleAdmin && !slices.Contains(access[pattern], t.Role) {
		return fmt.Errorf("%w: a %s token may not call %s", job.ErrForbidden, t.Role, pattern)
	}
	if len(t.Queues) == 0 {
		return nil
	}
	ctx := context.WithValue(r.Context(), tokenKey{}, t)
	_, route, _ := strings.Cut(pattern, " ")
	switch {
	case underLease[pattern]:
		return nil
	case strings.HasPrefix(route, "/v1/jobs/{id}"):
		id := pathSegment(r, 2)
		j, err := s.store.GetJob(r.Context(), id)
		if err == nil {
			err = allowQueue(ctx, j.Queue)
		}
		// A job of another queue and a missing one are answered alike, as
		// the batch routes answer them: what a scoped token learns does not
		// say which jobs exist, nor in which queue.
		return scopeRefused(ctx, id, "act on", err)
	case strings.HasPrefix(route, "/v1/queues/{name}"):
		return allowQueue(ctx, pathSegment(r, 2))
	}
	return nil
}

// underLease are the routes of one job whose handlers act under its lease:
// the store checks a scoped token's queues inside that write (holderOf) and
// the handler answers as authorize would (scopeRefused), so authorize reads
// no job for them.
var underLease = map[string]bool{
	"POST /v1/jobs/{id}/renew":      true,
	"POST /v1/jobs/{id}/transition": true,
	"POST /v1/jobs/{id}/release":    true,
	"POST /v1/jobs/{id}/logs":       true,
}

// pathSegment returns the i-th segment of r's path after /v1/, as the mux
// decodes it: the {id} of /v1/jobs/{id} is segment 2 (v1 is 0). The mux has
// not matched r yet, so r.PathValue is not set.
func pathSegment(r *http.Request, i int) string {
	segs := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/")
	if i >= len(segs) {
		return ""
	}
	seg, err := url.PathUnescape(segs[i])
	if err != nil {
		return ""
	}
	return seg
}

// requireTokens wraps the server's routes with authentication and the role
// checks; the handlers check queue scopes that need the request's body.
func (s *Server) requireTokens(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pattern := s.mux.Handler(r)
		if pattern == "" || isOpen(r, pattern) {
			next.ServeHTTP(w, r) // no route: the mux answers 404 or 405
			return
		}
		t, err := s.authenticate(r)
		if err == nil {
			err = s.authorize(r, pattern, t)
		}
		if err != nil {
			if !strings.HasPrefix(r.URL.Path, "/v1/") && errors.Is(err, job.ErrUnauthorized) {
				http.Error(w, "This dashboard needs an admin token: open /login?token=<token> once (slipway token create --role admin).", http.StatusUnauthorized)
				return
			}
			s.writeError(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenKey{}, t)))
	})
}

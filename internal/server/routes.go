package server

import (
	"fmt"
	"net/http"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/metrics"
	"github.com/slipway-ml/slipway/internal/store"
)

// routes maps the API under /v1/ and /healthz, and everything else to the
// web dashboard.
func (s *Server) routes(dash http.Handler) {
	m := http.NewServeMux()
	m.Handle("/", dash)
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	// The process's metrics and this store's queue depth. With Config.Auth
	// it needs a token like the API (an admin's: queue names and loads are
	// not for everyone); Prometheus sends it as a bearer token.
	m.Handle("GET /metrics", metrics.Default.Handler(metrics.StoreDepth{Store: s.store}))

	m.HandleFunc("GET /v1/queues", s.listQueues)
	m.HandleFunc("POST /v1/queues", s.createQueue)
	m.HandleFunc("GET /v1/queues/{name}", s.getQueue)
	m.HandleFunc("PUT /v1/queues/{name}", s.updateQueue)
	m.HandleFunc("DELETE /v1/queues/{name}", s.deleteQueue)

	m.HandleFunc("POST /v1/jobs", s.enqueue)
	m.HandleFunc("GET /v1/jobs", s.listJobs)
	m.HandleFunc("GET /v1/jobs/{id}", s.getJob)
	m.HandleFunc("GET /v1/jobs/{id}/code", s.getCode)
	m.HandleFunc("POST /v1/jobs/{id}/cancel", s.cancel)
	m.HandleFunc("GET /v1/jobs/{id}/logs", s.readLogs)

	// Agents' side: claims and every update under a lease.
	m.HandleFunc("POST /v1/agents", s.registerAgent)
	m.HandleFunc("GET /v1/agents", s.listAgents)
	m.HandleFunc("POST /v1/claim", s.claim)
	m.HandleFunc("POST /v1/claims", s.claimMany)
	m.HandleFunc("POST /v1/jobs/{id}/renew", s.renew)
	m.HandleFunc("POST /v1/agents/{id}/renew", s.renewLeases)
	m.HandleFunc("POST /v1/jobs/{id}/transition", s.transition)
	m.HandleFunc("POST /v1/transitions", s.transitions)
	m.HandleFunc("POST /v1/jobs/{id}/release", s.release)
	m.HandleFunc("POST /v1/jobs/{id}/logs", s.appendLogs)

	// Tokens (admins only when Config.Auth is on) and the dashboard's login.
	m.HandleFunc("POST /v1/tokens", s.createToken)
	m.HandleFunc("GET /v1/tokens", s.listTokens)
	m.HandleFunc("GET /v1/tokens/self", s.selfToken)
	m.HandleFunc("DELETE /v1/tokens/{id}", s.revokeToken)
	m.HandleFunc("GET /login", s.login)
	// Any other path under /v1/ is an API route this server does not
	// have (a client newer than the server): a 404 with the API's error
	// body, for every token, rather than the dashboard's answer.
	m.HandleFunc("/v1/", s.noRoute)
	s.mux = m
}

// noRoute answers a request under /v1/ that no route matches.
func (s *Server) noRoute(w http.ResponseWriter, r *http.Request) {
	s.writeError(w, r, fmt.Errorf("%w: no route %s %s on this server: is it older than its client?", job.ErrNotFound, r.Method, r.URL.Path))
}

func (s *Server) listQueues(w http.ResponseWriter, r *http.Request) {
	qs, err := s.store.ListQueues(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	qs = visibleQueues(r.Context(), qs)
	for i := range qs {
		qs[i] = s.withStatus(qs[i])
	}
	writeJSON(w, http.StatusOK, qs)
}

// checkQueue vets a queue before it is stored.
func (s *Server) checkQueue(req api.CreateQueue) (job.Queue, error) {
	if err := job.ValidateQueueName(req.Name); err != nil {
		return job.Queue{}, err
	}
	if _, err := job.ParseResource(string(req.Resource)); err != nil {
		return job.Queue{}, err
	}
	q := job.Queue{Name: req.Name, Resource: req.Resource, Config: req.Config, Vars: req.Vars, Policy: req.Policy}
	if req.MaxRunning != nil {
		q.MaxRunning = *req.MaxRunning
	}
	if err := store.ValidateMaxRunning(q); err != nil {
		return job.Queue{}, err
	}
	return s.admit.CheckQueue(q)
}

// withStatus fills what a queue still misses before it takes jobs.
func (s *Server) withStatus(q job.Queue) job.Queue {
	q.Missing = s.admit.Missing(q)
	return q
}

func (s *Server) createQueue(w http.ResponseWriter, r *http.Request) {
	var req api.CreateQueue
	if err := readJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	q, err := s.checkQueue(req)
	if err == nil {
		q, err = s.store.CreateQueue(r.Context(), q)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.log.Info("queue created", "queue", q.Name, "resource", q.Resource)
	writeJSON(w, http.StatusCreated, s.withStatus(q))
}

func (s *Server) getQueue(w http.ResponseWriter, r *http.Request) {
	q, err := s.store.GetQueue(r.Context(), r.PathValue("name"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.withStatus(q))
}

func (s *Server) updateQueue(w http.ResponseWriter, r *http.Request) {
	var req api.CreateQueue
	if err := readJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	old, err := s.store.GetQueue(r.Context(), r.PathValue("name"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Resource != "" && req.Resource != old.Resource {
		s.writeError(w, r, fmt.Errorf("%w: resource: a queue's resource cannot change (%s); create a new queue", job.ErrInvalid, old.Resource))
		return
	}
	req.Name, req.Resource = old.Name, old.Resource
	if req.Vars == nil {
		req.Vars = old.Vars
	}
	// What the request leaves out stays as it was: `queue update
	// --max-running` alone keeps the config, and a new config keeps the cap.
	if req.Config == nil {
		req.Config = old.Config
	}
	if req.MaxRunning == nil {
		req.MaxRunning = &old.MaxRunning
	}
	if req.Policy == nil {
		req.Policy = old.Policy
	}
	q, err := s.checkQueue(req)
	if err == nil {
		q, err = s.store.UpdateQueue(r.Context(), q)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.queues.Delete(q.Name)
	s.work.fire() // a queue that became ready may have claimable jobs
	writeJSON(w, http.StatusOK, s.withStatus(q))
}

func (s *Server) deleteQueue(w http.ResponseWriter, r *http.Request) {
	if err := s.store.DeleteQueue(r.Context(), r.PathValue("name")); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.queues.Delete(r.PathValue("name"))
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) enqueue(w http.ResponseWriter, r *http.Request) {
	var req api.Enqueue
	if err := readJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	key := r.Header.Get(api.IdempotencyKeyHeader)
	if err := store.ValidateIdempotencyKey(key); err != nil {
		s.writeError(w, r, err)
		return
	}
	j, err := s.checkJob(r, req)
	if err == nil {
		j, err = s.secrets.seal(j, req.Secrets)
	}
	created := j.ID
	if err == nil {
		j.IdempotencyKey = key
		j, err = s.store.Enqueue(r.Context(), j, req.Code)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if j.ID != created {
		// The key's job exists already: answer it, create nothing.
		s.log.Info("job enqueued before with this idempotency key", "job", j.ID, "queue", j.Queue)
		writeJSON(w, http.StatusOK, j)
		return
	}
	s.log.Info("job enqueued", "job", j.ID, "queue", j.Queue, "priority", j.Priority)
	s.work.fire()
	s.changes.fire()
	writeJSON(w, http.StatusCreated, j)
}

func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) {
	f := store.JobFilter{Queue: r.URL.Query().Get("queue")}
	if err := jobFilterQueues(r.Context(), &f); err != nil {
		s.writeError(w, r, err)
		return
	}
	if st := r.URL.Query().Get("state"); st != "" {
		state, err := job.ParseState(st)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		f.State = state
	}
	limit, err := queryInt(r, "limit", 0)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	f.Limit = int(limit)
	js, err := s.store.ListJobs(r.Context(), f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, js)
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request) {
	j, err := s.store.GetJob(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, j)
}

func (s *Server) getCode(w http.ResponseWriter, r *http.Request) {
	code, err := s.store.Code(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/gzip")
	_, _ = w.Write(code)
}

func (s *Server) cancel(w http.ResponseWriter, r *http.Request) {
	// The state before tells a cancel that ended a queued job (an outcome)
	// from one of a job already ended, which Cancel returns unchanged.
	before, err := s.store.GetJob(r.Context(), r.PathValue("id"))
	var j job.Job
	if err == nil {
		j, err = s.store.Cancel(r.Context(), r.PathValue("id"), "canceled by user")
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !before.State.Terminal() && j.State.Terminal() {
		metrics.Default.ObserveOutcome(j.Queue, j.State)
	}
	s.changes.fire()
	writeJSON(w, http.StatusOK, j)
}

func (s *Server) registerAgent(w http.ResponseWriter, r *http.Request) {
	var a job.Agent
	if err := readJSON(r, &a); err != nil {
		s.writeError(w, r, err)
		return
	}
	if a.ID == "" {
		a.ID = job.NewID("a-")
	}
	// An agent serves only the queues its token lets it claim from, so
	// that is what it is registered for (and what job why reports).
	queues, err := claimQueues(r.Context(), a.Queues)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	a.Queues = queues
	a, err = s.store.RegisterAgent(r.Context(), a)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.log.Info("agent registered", "agent", a.ID, "name", a.Name, "queues", a.Queues)
	writeJSON(w, http.StatusCreated, a)
}

func (s *Server) listAgents(w http.ResponseWriter, r *http.Request) {
	as, err := s.store.ListAgents(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, as)
}

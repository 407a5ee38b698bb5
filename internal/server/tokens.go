package server

import (
	"fmt"
	"net/http"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/job"
)

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	var req api.CreateToken
	if err := readJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	t, secret, err := job.NewToken(req.Role, req.Queues, req.Name)
	if err == nil {
		t, err = s.store.CreateToken(r.Context(), t)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.log.Info("token created", "token", t.ID, "role", t.Role, "queues", t.Queues)
	t.Hash = ""
	writeJSON(w, http.StatusCreated, api.CreatedToken{Token: t, Secret: secret})
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	ts, err := s.store.ListTokens(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ts)
}

// selfToken answers the token the request came with: what a client may do.
func (s *Server) selfToken(w http.ResponseWriter, r *http.Request) {
	t, ok := tokenOf(r.Context())
	if !ok {
		s.writeError(w, r, fmt.Errorf("%w: the server runs without tokens", job.ErrNotFound))
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	if err := s.store.RevokeToken(r.Context(), r.PathValue("id")); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.log.Info("token revoked", "token", r.PathValue("id"))
	w.WriteHeader(http.StatusNoContent)
}

// login checks the token in ?token= and keeps it in the session cookie that
// the dashboard's pages read, then sends the browser to the overview
// without the token in its address.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	secret := r.URL.Query().Get("token")
	r.Header.Set("Authorization", "Bearer "+secret)
	t, err := s.authenticate(r)
	if err == nil && t.Role != job.RoleAdmin {
		err = fmt.Errorf("%w: the dashboard shows every queue: it takes an admin token", job.ErrForbidden)
	}
	if err != nil {
		http.Error(w, err.Error(), httpStatus(err))
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: secret, Path: "/", HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

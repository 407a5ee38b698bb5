package server

// ClaimsWaiting is how many claims wait for work now: a test enqueues
// once a claim waits, rather than sleeping and hoping it does.
func (s *Server) ClaimsWaiting() int64 { return s.waiting.Load() }

// SecretsHeld reports whether the server holds job id's secret values, opened
// for redaction.
func (s *Server) SecretsHeld(id string) bool {
	s.secrets.mu.Lock()
	defer s.secrets.mu.Unlock()
	_, ok := s.secrets.values[id]
	return ok
}

package server

// ClaimsWaiting is how many claims wait for work now: a test enqueues
// once a claim waits, rather than sleeping and hoping it does.
func (s *Server) ClaimsWaiting() int64 { return s.waiting.Load() }

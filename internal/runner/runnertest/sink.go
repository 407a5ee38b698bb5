package runnertest

import (
	"context"
	"sync"

	"github.com/slipway-ml/slipway/internal/job"
)

// Sink is a runner.Sink that records what a run reports, for tests.
// The zero value is ready to use; it is safe for concurrent use.
type Sink struct {
	mu     sync.Mutex
	states []job.State
	lines  map[string][]string
	notify chan struct{} // closed and replaced on every report
}

// State records a state report.
func (s *Sink) State(st job.State, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.states = append(s.states, st)
	s.wake()
}

// Log records one line of output.
func (s *Sink) Log(stream, line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lines == nil {
		s.lines = map[string][]string{}
	}
	s.lines[stream] = append(s.lines[stream], line)
	s.wake()
}

// wake tells WaitFor callers that something was reported; s.mu is held.
func (s *Sink) wake() {
	if s.notify != nil {
		close(s.notify)
		s.notify = nil
	}
}

// States returns the states reported so far, in order.
func (s *Sink) States() []job.State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]job.State(nil), s.states...)
}

// Lines returns the lines of one stream ("stdout" or "stderr") so far, in order.
func (s *Sink) Lines(stream string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines[stream]...)
}

// WaitState blocks until st was reported or ctx ends; it reports whether st
// was seen.
func (s *Sink) WaitState(ctx context.Context, st job.State) bool {
	for {
		s.mu.Lock()
		for _, got := range s.states {
			if got == st {
				s.mu.Unlock()
				return true
			}
		}
		if s.notify == nil {
			s.notify = make(chan struct{})
		}
		ch := s.notify
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

package server

import (
	"testing"
	"time"
)

func TestForgetTouches(t *testing.T) {
	t.Parallel()
	var s Server
	now := time.Now()
	s.touched.Store("gone", now.Add(-touchEvery))
	s.touched.Store("recent", now.Add(-touchEvery/2))
	s.forgetTouches(now)
	if _, ok := s.touched.Load("gone"); ok {
		t.Errorf("an agent last recorded %v ago is still kept", touchEvery)
	}
	if _, ok := s.touched.Load("recent"); !ok {
		t.Errorf("an agent recorded %v ago was dropped: its next claim would write again too soon", touchEvery/2)
	}
}

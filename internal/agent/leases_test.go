package agent_test

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/server"
)

// renewals counts the lease renewals and claims a server answers, batched
// and single.
type renewals struct{ batched, single, claims, claimsMany atomic.Int64 }

// front counts renewals and claims on their way to h.
func (n *renewals) front(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/v1/claims":
			n.claimsMany.Add(1)
		case r.Method == http.MethodPost && r.URL.Path == "/v1/claim":
			n.claims.Add(1)
		case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/v1/agents/") && strings.HasSuffix(r.URL.Path, "/renew"):
			n.batched.Add(1)
		case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/v1/jobs/") && strings.HasSuffix(r.URL.Path, "/renew"):
			n.single.Add(1)
		}
		h.ServeHTTP(w, r)
	})
}

// TestAgentRenewsItsLeasesTogether runs three jobs for over a lease's
// length and checks that the agent kept every lease, with batched
// renewals only: no job was taken back and claimed again.
func TestAgentRenewsItsLeasesTogether(t *testing.T) {
	t.Parallel()
	const jobs = 3
	n := &renewals{}
	// A lease of three seconds is renewed every second: a renewal would
	// have to come two seconds late, even on a busy machine, for the
	// reaper to take a job back.
	e := setupBehind(t, server.Config{LeaseTTL: 3 * time.Second, ReapEvery: 50 * time.Millisecond}, n.front)
	e.queue("q", job.LocalProcess)
	var ids []string
	for range jobs {
		ids = append(ids, e.launch("q", sh("true"), job.Medium).ID)
	}
	g := &gate{open: make(chan struct{}), startedC: make(chan struct{}, jobs)}
	e.startAgent([]string{"q"}, jobs, g)
	for range jobs {
		<-g.startedC
	}
	// Four rounds of renewals span more than a lease: only they kept the
	// jobs. The deadline only turns a hang, should renewals stop, into a
	// failure; it is far from what the rounds take.
	deadline := time.After(time.Minute)
	for n.batched.Load() < 4 {
		select {
		case <-deadline:
			t.Fatalf("got %d rounds of renewals in a minute, want 4", n.batched.Load())
		case <-time.After(10 * time.Millisecond):
		}
	}
	close(g.open)
	for _, id := range ids {
		j := e.waitEnd(id)
		claims := 0
		for _, ev := range j.Events {
			if ev.To == job.Claimed {
				claims++
			}
		}
		if j.State != job.Finished || claims != 1 {
			t.Errorf("job %s: %s (%s) after %d claims, want finished after 1: its lease was kept", id, j.State, j.Reason, claims)
		}
	}
	if n.single.Load() != 0 {
		t.Fatalf("got %d batched and %d single renewals, want batched ones only", n.batched.Load(), n.single.Load())
	}
	if n.claimsMany.Load() == 0 || n.claims.Load() != 0 {
		t.Fatalf("got %d claims of many and %d of one, want claims of many only", n.claimsMany.Load(), n.claims.Load())
	}
}

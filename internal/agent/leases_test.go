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

// front counts renewals and claims on their way to h; with noBatch, it
// answers the batch endpoints 404 Not Found, as a server from before them
// would.
func (n *renewals) front(noBatch bool) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case r.Method == http.MethodPost && r.URL.Path == "/v1/claims":
				if noBatch {
					http.NotFound(w, r)
					return
				}
				n.claimsMany.Add(1)
			case r.Method == http.MethodPost && r.URL.Path == "/v1/claim":
				n.claims.Add(1)
			case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/v1/agents/") && strings.HasSuffix(r.URL.Path, "/renew"):
				if noBatch {
					http.NotFound(w, r)
					return
				}
				n.batched.Add(1)
			case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/v1/jobs/") && strings.HasSuffix(r.URL.Path, "/renew"):
				n.single.Add(1)
			}
			h.ServeHTTP(w, r)
		})
	}
}

// testLeasesKept runs three jobs for over a lease's length and checks that
// the agent kept every lease: no job was taken back and claimed again.
func testLeasesKept(t *testing.T, noBatch bool) *renewals {
	const jobs = 3
	n := &renewals{}
	// A lease of a second is renewed every third of one: a renewal would
	// have to come two thirds of a second late, on a busy machine, for the
	// reaper to take a job back.
	e := setupBehind(t, server.Config{LeaseTTL: time.Second, ReapEvery: 20 * time.Millisecond}, n.front(noBatch))
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
	// Four rounds of renewals span more than a lease: only they kept the jobs.
	for n.batched.Load()+n.single.Load()/jobs < 4 {
		time.Sleep(10 * time.Millisecond)
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
	return n
}

func TestAgentRenewsItsLeasesTogether(t *testing.T) {
	t.Parallel()
	n := testLeasesKept(t, false)
	if n.batched.Load() == 0 || n.single.Load() != 0 {
		t.Fatalf("got %d batched and %d single renewals, want batched ones only", n.batched.Load(), n.single.Load())
	}
	if n.claimsMany.Load() == 0 || n.claims.Load() != 0 {
		t.Fatalf("got %d claims of many and %d of one, want claims of many only", n.claimsMany.Load(), n.claims.Load())
	}
}

func TestAgentClaimsAndRenewsOneByOneWithAnOlderServer(t *testing.T) {
	t.Parallel()
	n := testLeasesKept(t, true)
	if n.single.Load() == 0 || n.claims.Load() == 0 {
		t.Fatalf("got %d single renewals and %d single claims, want the agent to fall back to both", n.single.Load(), n.claims.Load())
	}
}

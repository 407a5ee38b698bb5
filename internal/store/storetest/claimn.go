package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
)

// testClaimN checks that a claim of several jobs takes them round-robin
// across queues, by priority within each, each with its own lease and event,
// stops at what the queues hold and at their max_running, and refuses a
// count out of range.
func testClaimN(t *testing.T, s *suite) {
	c := ctx(t)
	s.queue(t, "a")
	s.queue(t, "b")
	if _, err := s.CreateQueue(c, job.Queue{Name: "capped", Resource: job.LocalProcess, MaxRunning: 2}); err != nil {
		t.Fatalf("creating a capped queue: %v", err)
	}
	lowA := s.enqueue(t, "a", job.Low)
	highA := s.enqueue(t, "a", job.High)
	b1 := s.enqueue(t, "b", job.Medium)
	b2 := s.enqueue(t, "b", job.Medium)
	req := store.ClaimRequest{Agent: "agent-1", Queues: []string{"a", "b"}, TTL: ttl}

	got, err := s.ClaimN(c, req, 3)
	if err != nil {
		t.Fatalf("claiming 3: %v", err)
	}
	if want := []string{highA.ID, b1.ID, lowA.ID}; !slices.Equal(ids(got), want) {
		t.Fatalf("claiming 3 from [a b]: got %v, want %v (a, b, a again: round-robin, by priority within a)", ids(got), want)
	}
	tokens := map[int64]bool{}
	for _, j := range got {
		if j.State != job.Claimed || j.Lease == nil || j.Lease.Agent != "agent-1" {
			t.Fatalf("claimed job %s: got state %s, lease %+v; want claimed, held by agent-1", j.ID, j.State, j.Lease)
		}
		if j.Lease.Token != 1 {
			t.Fatalf("claimed job %s: got token %d, want 1 on its first claim", j.ID, j.Lease.Token)
		}
		tokens[j.Lease.Token] = true
		stored := s.get(t, j.ID)
		if n := len(stored.Events); n != 2 || stored.Events[1].To != job.Claimed || stored.Events[1].Actor != "agent-1" {
			t.Fatalf("events of job %s: got %+v, want queued then claimed by agent-1", j.ID, stored.Events)
		}
		stored.Events = nil
		sameJob(t, "GetJob after ClaimN", stored, j)
	}
	// Each job's lease is its own: finishing one leaves the others held.
	s.move(t, got[0], got[0].Lease.Token, job.Finished)
	if j := s.get(t, got[1].ID); j.Lease == nil || j.State != job.Claimed {
		t.Fatalf("job %s after another of its claim finished: got state %s, lease %+v; want claimed, held", j.ID, j.State, j.Lease)
	}

	// Fewer jobs than asked: what there is.
	got, err = s.ClaimN(c, req, 5)
	if err != nil || !slices.Equal(ids(got), []string{b2.ID}) {
		t.Fatalf("claiming 5 with one left: got %v, %v; want [%s]", ids(got), err, b2.ID)
	}
	_, err = s.ClaimN(c, req, 5)
	wantErr(t, "claiming 5 from drained queues", err, job.ErrNoJob)

	// A capped queue yields up to its cap, then the next queue is tried.
	for range 3 {
		s.enqueue(t, "capped", job.Medium)
	}
	last := s.enqueue(t, "a", job.Medium)
	got, err = s.ClaimN(c, store.ClaimRequest{Agent: "agent-2", Queues: []string{"capped", "a"}, TTL: ttl}, 4)
	if err != nil {
		t.Fatalf("claiming 4 from [capped a]: %v", err)
	}
	var queues []string
	for _, j := range got {
		queues = append(queues, j.Queue)
	}
	if want := []string{"capped", "a", "capped"}; !slices.Equal(queues, want) || got[1].ID != last.ID {
		t.Fatalf("claiming 4 from [capped a]: got queues %v, want %v: round-robin, a's one job, capped up to its cap of 2", queues, want)
	}

	for _, n := range []int{0, -1, store.MaxClaim + 1} {
		_, err := s.ClaimN(c, req, n)
		wantErr(t, fmt.Sprintf("claiming %d jobs", n), err, job.ErrInvalid)
	}
}

// testConcurrentClaimN checks that claims of several jobs at once never
// hand one job to two claimers.
func testConcurrentClaimN(t *testing.T, s *suite) {
	const jobs, claimers, per = 120, 6, 7
	c := ctx(t)
	s.queue(t, "q")
	for range jobs {
		s.enqueue(t, "q", job.Medium)
	}
	var (
		mu      sync.Mutex
		claimed = map[string]int{}
		wg      sync.WaitGroup
	)
	for i := range claimers {
		wg.Go(func() {
			agent := fmt.Sprintf("agent-%d", i)
			for {
				js, err := s.ClaimN(c, store.ClaimRequest{Agent: agent, Queues: []string{"q"}, TTL: ttl}, per)
				if err != nil {
					wantErrAsync(t, agent, err)
					return
				}
				mu.Lock()
				for _, j := range js {
					claimed[j.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(claimed) != jobs {
		t.Fatalf("got %d distinct jobs claimed, want %d", len(claimed), jobs)
	}
	for id, n := range claimed {
		if n != 1 {
			t.Fatalf("job %s: claimed %d times, want once", id, n)
		}
	}
}

// wantErrAsync reports, from a goroutine, an error other than job.ErrNoJob.
func wantErrAsync(t *testing.T, agent string, err error) {
	if !errors.Is(err, job.ErrNoJob) {
		t.Errorf("%s claiming: got error %v, want none or %v", agent, err, job.ErrNoJob)
	}
}

// testConcurrentClaimNAgents checks claims of several agents at once, of
// one queue each (which a store may take together): each job goes to one
// claim, under its agent's lease and API token, with its claimed event
// by that agent; each claim's jobs come in their queue's order (by
// priority, then age); and a capped queue hands out no more than its
// max_running across them all.
func testConcurrentClaimNAgents(t *testing.T, s *suite) {
	const agents, per, capped = 8, 4, 5
	c := ctx(t)
	s.queue(t, "q")
	if _, err := s.CreateQueue(c, job.Queue{Name: "capped", Resource: job.LocalProcess, MaxRunning: capped}); err != nil {
		t.Fatalf("creating a capped queue: %v", err)
	}
	order := map[string]int{} // id → rank in its queue's order
	var qs []job.Job
	for i := range 2 * agents * per {
		qs = append(qs, s.enqueue(t, "q", priorities[i*7%len(priorities)]))
	}
	slices.SortStableFunc(qs, func(a, b job.Job) int { return int(b.Priority) - int(a.Priority) })
	for i, j := range qs {
		order[j.ID] = i
	}
	for i := range 2 * capped {
		order[s.enqueue(t, "capped", job.Medium).ID] = i
	}
	var (
		mu    sync.Mutex
		owner = map[string]string{} // job id → agent
		held  int                   // jobs of capped handed out
		wg    sync.WaitGroup
		start = make(chan struct{})
	)
	for i := range agents {
		agent := fmt.Sprintf("agent-%d", i)
		for _, q := range []string{"q", "q", "capped"} {
			wg.Go(func() {
				<-start
				req := store.ClaimRequest{Agent: agent, Queues: []string{q}, TTL: ttl, TokenID: "token-" + agent}
				js, err := s.ClaimN(c, req, per)
				if err != nil {
					wantErrAsync(t, agent, err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				for k, j := range js {
					if l := j.Lease; j.Queue != q || l == nil || l.Agent != agent || l.TokenID != req.TokenID {
						t.Errorf("job %s claimed by %s from %s: got queue %s, lease %+v; want held by %s with %s", j.ID, agent, q, j.Queue, l, agent, req.TokenID)
					}
					if k > 0 && order[js[k-1].ID] > order[j.ID] {
						t.Errorf("claim of %s from %s: got %v, want its jobs in their queue's order", agent, q, ids(js))
					}
					if prev, ok := owner[j.ID]; ok {
						t.Errorf("job %s: claimed by %s and by %s", j.ID, prev, agent)
					}
					owner[j.ID] = agent
					if q == "capped" {
						held++
					}
				}
			})
		}
	}
	close(start)
	wg.Wait()
	if held != capped {
		t.Fatalf("capped queue: got %d jobs handed out, want its max_running %d", held, capped)
	}
	if got, want := len(owner), 2*agents*per+capped; got != want {
		t.Fatalf("got %d jobs claimed, want %d", got, want)
	}
	for id, agent := range owner {
		j := s.get(t, id)
		if j.Lease == nil || j.Lease.Agent != agent || len(j.Events) != 2 || j.Events[1].To != job.Claimed || j.Events[1].Actor != agent {
			t.Fatalf("job %s, claimed by %s, as stored: got lease %+v, events %+v; want held by %s, claimed by %s", id, agent, j.Lease, j.Events, agent, agent)
		}
	}
}

package agent_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/agent"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/runner"
	"github.com/slipway-ml/slipway/internal/server"
)

// runAgent starts an agent with grace and returns a stop func that ends
// its context and waits for Run to return.
func (e *env) runAgent(queues []string, grace time.Duration, r runner.Runner) (stop func()) {
	e.t.Helper()
	ag, err := agent.New(agent.Config{
		Client: e.c, Queues: queues, MaxJobs: 1, Logger: quiet, ClaimWait: 2 * time.Second, ShutdownGrace: grace,
		Runner: func(job.Queue) (runner.Runner, error) { return r, nil },
	})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() { _ = ag.Run(ctx); close(done) }()
	stop = func() { cancel(); <-done }
	e.t.Cleanup(stop)
	return stop
}

func TestShutdownLetsLocalJobsFinishWithinTheGrace(t *testing.T) {
	t.Parallel()
	e := setup(t, server.Config{LeaseTTL: time.Hour})
	e.queue("q", job.LocalProcess)
	j := e.launch("q", sh("echo begun; sleep 0.5; echo done"), job.Medium)
	later := e.launch("q", sh("echo later"), job.Medium)
	stop := e.runAgent([]string{"q"}, time.Minute, newProcess(t))
	e.waitFor(j.ID, "running", func(j job.Job) bool { return j.State == job.Running })
	stop()
	got := e.waitEnd(j.ID)
	if got.State != job.Finished {
		t.Fatalf("job running at shutdown: got %s (%s), want finished within the grace", got.State, got.Reason)
	}
	if lines := e.logs(j.ID); !slices.Contains(lines, "stdout: done") {
		t.Fatalf("logs: got %q, want the job's last line", lines)
	}
	if got, _ := e.c.Job(e.ctx, later.ID); got.State != job.Queued {
		t.Fatalf("job queued at shutdown: got %s, want queued: a stopping agent claims nothing", got.State)
	}
}

func TestShutdownHandsOverAtOnceWithoutGrace(t *testing.T) {
	t.Parallel()
	// Leases never expire here: only a release brings the job back.
	e := setup(t, server.Config{LeaseTTL: time.Hour})
	e.queue("q", job.LocalProcess)
	j := e.launch("q", sh("echo begun; sleep 30"), job.Medium)
	stop := e.runAgent([]string{"q"}, 0, newProcess(t))
	running := e.waitFor(j.ID, "running", func(j job.Job) bool { return j.State == job.Running })
	stop()
	got, err := e.c.Job(e.ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != job.Queued || got.Lease != nil || got.ExternalID != running.ExternalID || got.Attempt != 1 {
		t.Fatalf("after shutdown: got %s lease %+v external id %q attempt %d, want queued at once, no lease, %q, attempt 1",
			got.State, got.Lease, got.ExternalID, got.Attempt, running.ExternalID)
	}
	last := got.Events[len(got.Events)-1]
	if last.From != job.Running || last.To != job.Queued || !strings.Contains(last.Reason, "handed over") {
		t.Fatalf("last event: got %s → %s (%s), want running → queued, handed over", last.From, last.To, last.Reason)
	}
}

// TestClaimsAlternateAcrossAnAgentsQueues checks fairness: with one slot
// and work in both queues, an agent takes them in turn.
func TestClaimsAlternateAcrossAnAgentsQueues(t *testing.T) {
	t.Parallel()
	e := setup(t, server.Config{})
	e.queue("a", job.LocalProcess)
	e.queue("b", job.LocalProcess)
	var ids []string
	for range 3 {
		ids = append(ids, e.launch("a", sh("true"), job.Medium).ID)
	}
	for range 3 {
		ids = append(ids, e.launch("b", sh("true"), job.Medium).ID)
	}
	e.runAgent([]string{"a", "b"}, 0, newProcess(t))
	type claim struct {
		at    time.Time
		queue string
	}
	var claims []claim
	for _, id := range ids {
		j := e.waitEnd(id)
		for _, ev := range j.Events {
			if ev.To == job.Claimed {
				claims = append(claims, claim{ev.At, j.Queue})
			}
		}
	}
	slices.SortFunc(claims, func(x, y claim) int { return x.at.Compare(y.at) })
	var order []string
	for _, c := range claims {
		order = append(order, c.queue)
	}
	if want := []string{"a", "b", "a", "b", "a", "b"}; !slices.Equal(order, want) {
		t.Fatalf("claim order: got %v, want %v", order, want)
	}
}

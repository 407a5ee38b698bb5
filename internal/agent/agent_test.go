package agent_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/agent"
	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/client"
	"github.com/slipway-ml/slipway/internal/dockertest"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/runner"
	"github.com/slipway-ml/slipway/internal/runner/container"
	"github.com/slipway-ml/slipway/internal/runner/process"
	"github.com/slipway-ml/slipway/internal/server"
	"github.com/slipway-ml/slipway/internal/store/sqlite"
)

var quiet = slog.New(slog.DiscardHandler)

// env is a real server on SQLite and a client to it.
type env struct {
	t   *testing.T
	c   *client.Client
	ctx context.Context
}

func setup(t *testing.T, cfg server.Config) *env {
	t.Helper()
	return setupBehind(t, cfg, func(h http.Handler) http.Handler { return h })
}

// setupBehind is setup with the server's handler wrapped by front.
func setupBehind(t *testing.T, cfg server.Config, front func(http.Handler) http.Handler) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store, cfg.Logger = st, quiet
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = srv.Run(ctx); close(done) }()
	hs := httptest.NewServer(front(srv))
	t.Cleanup(func() {
		cancel()
		hs.CloseClientConnections()
		hs.Close()
		<-done
		st.Close()
	})
	c, err := client.New(hs.URL)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, c: c, ctx: ctx}
}

func (e *env) queue(name string, res job.Resource) {
	e.t.Helper()
	if _, err := e.c.CreateQueue(e.ctx, api.CreateQueue{Name: name, Resource: res}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) launch(queue string, spec job.Spec, prio job.Priority) job.Job {
	e.t.Helper()
	j, err := e.c.Enqueue(e.ctx, api.Enqueue{Queue: queue, Spec: spec, Priority: prio})
	if err != nil {
		e.t.Fatal(err)
	}
	return j
}

// startAgent runs an agent until the test ends, and returns a stop func
// that ends it earlier.
func (e *env) startAgent(queues []string, maxJobs int, r runner.Runner) (stop func()) {
	e.t.Helper()
	ag, err := agent.New(agent.Config{
		Client: e.c, Queues: queues, MaxJobs: maxJobs, Logger: quiet, ClaimWait: 2 * time.Second,
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

// waitFor polls the job until cond holds, failing after a generous bound.
func (e *env) waitFor(id string, what string, cond func(job.Job) bool) job.Job {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		j, err := e.c.Job(e.ctx, id)
		if err != nil {
			e.t.Fatal(err)
		}
		if cond(j) {
			return j
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("job %s never %s; last state %s (%s)", id, what, j.State, j.Reason)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *env) waitEnd(id string) job.Job {
	return e.waitFor(id, "ended", func(j job.Job) bool { return j.State.Terminal() })
}

func (e *env) logs(id string) []string {
	e.t.Helper()
	l, err := e.c.Logs(e.ctx, id, 0, 0, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, line := range l.Lines {
		if line.Stream != "slipway" {
			out = append(out, line.Stream+": "+line.Text)
		}
	}
	return out
}

func newProcess(t *testing.T) *process.Runner {
	t.Helper()
	r, err := process.New(process.Config{WorkDir: t.TempDir(), Grace: 2 * time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func sh(script string) job.Spec { return job.Spec{Entrypoint: []string{"sh", "-c", script}} }

func TestJobRunsToFinishedWithLogsAndEvents(t *testing.T) {
	t.Parallel()
	e := setup(t, server.Config{})
	e.queue("q", job.LocalProcess)
	e.startAgent([]string{"q"}, 1, newProcess(t))
	spec := sh(`echo "epochs=$(echo $SLIPWAY_RUN_CONFIG | tr -d ' ')"; echo warn >&2`)
	spec.RunConfig = []byte(`{"epochs": 2}`)
	j := e.waitEnd(e.launch("q", spec, job.Medium).ID)
	if j.State != job.Finished {
		t.Fatalf("state: got %s (%s), want finished", j.State, j.Reason)
	}
	logs := strings.Join(e.logs(j.ID), "\n")
	for _, want := range []string{`stdout: epochs={"epochs":2}`, "stderr: warn"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs %q lack %q", logs, want)
		}
	}
	var path []string
	for i, ev := range j.Events {
		path = append(path, string(ev.To))
		if i > 0 && ev.From != j.Events[i-1].To {
			t.Errorf("event %d goes from %s, but the one before ended in %s", i, ev.From, j.Events[i-1].To)
		}
		if ev.Reason == "" {
			t.Errorf("event %d (%s) has no reason", i, ev.To)
		}
	}
	if got, want := strings.Join(path, ">"), "queued>claimed>submitting>starting>running>finished"; got != want {
		t.Errorf("events: got %s, want %s", got, want)
	}
}

func TestFailureCarriesTheExitCode(t *testing.T) {
	t.Parallel()
	e := setup(t, server.Config{})
	e.queue("q", job.LocalProcess)
	e.startAgent([]string{"q"}, 1, newProcess(t))
	j := e.waitEnd(e.launch("q", sh("echo boom >&2; exit 3"), job.Medium).ID)
	if j.State != job.Failed || !strings.Contains(j.Reason, "3") {
		t.Fatalf("got %s (%s), want failed naming exit code 3", j.State, j.Reason)
	}
}

func TestCancelStopsARunningJob(t *testing.T) {
	t.Parallel()
	e := setup(t, server.Config{LeaseTTL: 300 * time.Millisecond})
	e.queue("q", job.LocalProcess)
	e.startAgent([]string{"q"}, 1, newProcess(t))
	j := e.launch("q", sh("echo started; sleep 60"), job.Medium)
	e.waitFor(j.ID, "ran", func(j job.Job) bool { return j.State == job.Running })
	if _, err := e.c.Cancel(e.ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	j = e.waitEnd(j.ID)
	if j.State != job.Stopped || !strings.Contains(j.Reason, "canceled by user") {
		t.Fatalf("got %s (%s), want stopped, canceled by user", j.State, j.Reason)
	}
}

func TestPriorityOrderWithOneSlot(t *testing.T) {
	t.Parallel()
	e := setup(t, server.Config{})
	e.queue("q", job.LocalProcess)
	ids := map[string]string{}
	for _, p := range []job.Priority{job.Low, job.Medium, job.Critical, job.High} {
		ids[e.launch("q", sh("true"), p).ID] = p.String()
	}
	e.startAgent([]string{"q"}, 1, newProcess(t))
	type started struct {
		at   time.Time
		prio string
	}
	var order []string
	for id := range ids {
		e.waitEnd(id)
	}
	js, err := e.c.Jobs(e.ctx, "q", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	var runs []started
	for _, j := range js {
		j, err := e.c.Job(e.ctx, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range j.Events {
			if ev.To == job.Claimed {
				runs = append(runs, started{ev.At, ids[j.ID]})
			}
		}
	}
	for len(runs) > 0 {
		first := 0
		for i, r := range runs {
			if r.at.Before(runs[first].at) {
				first = i
			}
		}
		order = append(order, runs[first].prio)
		runs = append(runs[:first], runs[first+1:]...)
	}
	if got, want := strings.Join(order, ","), "critical,high,medium,low"; got != want {
		t.Fatalf("claim order: got %s, want %s", got, want)
	}
}

func TestReclaimAfterAgentLossDoesNotRunTwice(t *testing.T) {
	t.Parallel()
	e := setup(t, server.Config{LeaseTTL: 300 * time.Millisecond, ReapEvery: 20 * time.Millisecond})
	e.queue("q", job.LocalProcess)
	stop := e.startAgent([]string{"q"}, 1, newProcess(t))
	j := e.launch("q", sh("echo once; sleep 60"), job.Medium)
	e.waitFor(j.ID, "ran", func(j job.Job) bool { return j.State == job.Running })
	// Its line shipped: the run's Wait begins before its start is
	// answered, so that running may be reported before the process prints.
	e.waitFor(j.ID, "printed", func(job.Job) bool { return strings.Contains(strings.Join(e.logs(j.ID), "\n"), "once") })
	stop() // the agent goes away holding the job

	// A new agent (a restart) re-claims the same attempt; the process runner
	// cannot re-attach to a process of the old agent, so it says so rather
	// than run the job a second time.
	e.startAgent([]string{"q"}, 1, newProcess(t))
	j = e.waitEnd(j.ID)
	if j.State != job.Failed || !strings.Contains(j.Reason, "lost") || j.Attempt != 1 {
		t.Fatalf("got %s attempt %d (%s), want failed attempt 1 naming the lost run", j.State, j.Attempt, j.Reason)
	}
	t.Logf("logs: %q events: %+v", e.logs(j.ID), j.Events)
	if n := strings.Count(strings.Join(e.logs(j.ID), "\n"), "once"); n != 1 {
		t.Fatalf("the job printed %q %d times, want once", "once", n)
	}
}

func TestAgentsShareAQueueWithoutDoubleClaims(t *testing.T) {
	t.Parallel()
	e := setup(t, server.Config{})
	e.queue("q", job.LocalProcess)
	var ids []string
	for range 20 {
		ids = append(ids, e.launch("q", sh("echo $SLIPWAY_JOB_ID"), job.Medium).ID)
	}
	for range 3 {
		e.startAgent([]string{"q"}, 2, newProcess(t))
	}
	for _, id := range ids {
		j := e.waitEnd(id)
		claims := 0
		for _, ev := range j.Events {
			if ev.To == job.Claimed {
				claims++
			}
		}
		if j.State != job.Finished || claims != 1 {
			t.Errorf("job %s: %s after %d claims, want finished after 1", id, j.State, claims)
		}
	}
}

func TestReattachToAContainerShipsEachLineOnce(t *testing.T) {
	t.Parallel()
	cli := dockertest.Client(t)
	img := dockertest.BaseImage(t, cli)
	newRunner := func() *container.Runner {
		r, err := container.New(container.Config{Client: cli, Grace: time.Second, WorkDir: t.TempDir(), Logger: quiet,
			Labels: map[string]string{"slipway.test": "agent-reattach"}})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	e := setup(t, server.Config{LeaseTTL: 500 * time.Millisecond, ReapEvery: 20 * time.Millisecond})
	e.queue("q", job.LocalContainer)
	stop := e.startAgent([]string{"q"}, 1, newRunner())
	spec := sh("echo before; echo err-before >&2; sleep 3; echo after")
	spec.Image = img
	j := e.launch("q", spec, job.Medium)
	e.waitFor(j.ID, "logged its first line", func(job.Job) bool { return len(e.logs(j.ID)) >= 2 })
	stop() // the agent dies; its container runs on

	e.startAgent([]string{"q"}, 1, newRunner())
	j = e.waitEnd(j.ID)
	if j.State != job.Finished || j.Attempt != 1 {
		t.Fatalf("got %s attempt %d (%s), want finished attempt 1", j.State, j.Attempt, j.Reason)
	}
	got := strings.Join(e.logs(j.ID), "\n")
	for _, line := range []string{"stdout: before", "stderr: err-before", "stdout: after"} {
		if n := strings.Count(got, line); n != 1 {
			t.Errorf("line %q shipped %d times, want once; logs:\n%s", line, n, got)
		}
	}
}

package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/client"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/logtest"
	"github.com/slipway-ml/slipway/internal/server"
	"github.com/slipway-ml/slipway/internal/store"
	"github.com/slipway-ml/slipway/internal/store/sqlite"
)

// setup runs a real server on a real SQLite file and returns a real client.
func setup(t testing.TB, cfg server.Config) *client.Client {
	t.Helper()
	_, c := setupServer(t, cfg)
	return c
}

// setupServer is setup that also returns the server.
func setupServer(t testing.TB, cfg server.Config) (*server.Server, *client.Client) {
	t.Helper()
	return setupWrapped(t, cfg, func(st store.Store) store.Store { return st })
}

// setupWrapped is setupServer with the store seen through wrap, which may
// make some of its calls fail.
func setupWrapped(t testing.TB, cfg server.Config, wrap func(store.Store) store.Store) (*server.Server, *client.Client) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store = wrap(st)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = srv.Run(ctx); close(done) }()
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		cancel()
		hs.Close()
		<-done
		st.Close()
	})
	c, err := client.New(hs.URL)
	if err != nil {
		t.Fatal(err)
	}
	return srv, c
}

func mustQueue(t testing.TB, c *client.Client, name string, res job.Resource) {
	t.Helper()
	if _, err := c.CreateQueue(context.Background(), api.CreateQueue{Name: name, Resource: res}); err != nil {
		t.Fatalf("creating queue %s: %v", name, err)
	}
}

func shellJob(queue string) api.Enqueue {
	return api.Enqueue{Queue: queue, Spec: job.Spec{Entrypoint: []string{"sh", "-c", "echo hi"}}}
}

func TestHealthz(t *testing.T) {
	t.Parallel()
	c := setup(t, server.Config{})
	resp, err := http.Get(c.URL() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz: got %d, want 200", resp.StatusCode)
	}
}

func TestQueueErrorsNameWhatIsWrong(t *testing.T) {
	t.Parallel()
	c := setup(t, server.Config{})
	ctx := context.Background()
	mustQueue(t, c, "q1", job.LocalProcess)
	tests := []struct {
		name    string
		q       api.CreateQueue
		want    error
		mention string
	}{
		{"duplicate", api.CreateQueue{Name: "q1", Resource: job.LocalProcess}, job.ErrExists, "q1"},
		{"bad name", api.CreateQueue{Name: "no spaces", Resource: job.LocalProcess}, job.ErrInvalid, "queue name"},
		{"bad resource", api.CreateQueue{Name: "q2", Resource: "mainframe"}, job.ErrInvalid, "resource"},
		{"config not an object", api.CreateQueue{Name: "q3", Resource: job.LocalProcess, Config: []byte(`[1]`)}, job.ErrInvalid, "config"},
	}
	for _, tt := range tests {
		_, err := c.CreateQueue(ctx, tt.q)
		if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.mention) {
			t.Errorf("%s: got %v, want %v mentioning %q", tt.name, err, tt.want, tt.mention)
		}
	}
	if _, err := c.Queue(ctx, "nope"); !errors.Is(err, job.ErrNotFound) {
		t.Errorf("unknown queue: got %v, want ErrNotFound", err)
	}
}

func TestEnqueueErrorsNameWhatIsWrong(t *testing.T) {
	t.Parallel()
	c := setup(t, server.Config{})
	ctx := context.Background()
	mustQueue(t, c, "proc", job.LocalProcess)
	mustQueue(t, c, "ctr", job.LocalContainer)
	tests := []struct {
		name    string
		req     api.Enqueue
		want    error
		mention string
	}{
		{"unknown queue", shellJob("nope"), job.ErrNotFound, `"nope"`},
		{"container without image", api.Enqueue{Queue: "ctr", Spec: job.Spec{Entrypoint: []string{"x"}}}, job.ErrInvalid, "image"},
		{"process without command", api.Enqueue{Queue: "proc", Spec: job.Spec{Image: "busybox"}}, job.ErrInvalid, "entrypoint"},
		{"run config not an object", api.Enqueue{Queue: "proc", Spec: job.Spec{Entrypoint: []string{"x"}, RunConfig: []byte(`"s"`)}}, job.ErrInvalid, "run_config"},
		{"bad env key", api.Enqueue{Queue: "proc", Spec: job.Spec{Entrypoint: []string{"x"}, Env: map[string]string{"A=B": "c"}}}, job.ErrInvalid, "env"},
	}
	for _, tt := range tests {
		_, err := c.Enqueue(ctx, tt.req)
		if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.mention) {
			t.Errorf("%s: got %v, want %v mentioning %q", tt.name, err, tt.want, tt.mention)
		}
	}
}

func TestMalformedBodiesAreRefused(t *testing.T) {
	t.Parallel()
	c := setup(t, server.Config{})
	mustQueue(t, c, "proc", job.LocalProcess)
	for _, body := range []string{
		`{"queue": "proc", "priority": "urgent", "spec": {"entrypoint": ["x"]}}`,
		`{"queue": "proc", "spec": {"entrypoint": ["x"]}, "colour": "blue"}`,
		`{"queue": `,
		`{"queue": "proc", "spec": {"entrypoint": ["x"]}} trailing`,
	} {
		resp, err := http.Post(c.URL()+"/v1/jobs", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("POST /v1/jobs %s: got %d, want 400", body, resp.StatusCode)
		}
	}
}

func TestClaimWaitsForWork(t *testing.T) {
	t.Parallel()
	c := setup(t, server.Config{})
	ctx := context.Background()
	mustQueue(t, c, "q", job.LocalProcess)
	got := make(chan api.Claimed, 1)
	errc := make(chan error, 1)
	go func() {
		cl, err := c.Claim(ctx, api.Claim{Agent: "a1", Queues: []string{"q"}, Wait: 10 * time.Second})
		errc <- err
		got <- cl
	}()
	time.Sleep(50 * time.Millisecond) // let the claim start waiting first
	j, err := c.Enqueue(ctx, shellJob("q"))
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("claim: %v", err)
	}
	cl := <-got
	if cl.Job.ID != j.ID || cl.Job.State != job.Claimed || cl.Queue.Resource != job.LocalProcess {
		t.Fatalf("claimed %s in state %s on %s, want %s claimed on local-process", cl.Job.ID, cl.Job.State, cl.Queue.Resource, j.ID)
	}
}

func TestClaimWithNothingQueuedAnswersNoJob(t *testing.T) {
	t.Parallel()
	c := setup(t, server.Config{})
	mustQueue(t, c, "q", job.LocalProcess)
	_, err := c.Claim(context.Background(), api.Claim{Agent: "a1", Queues: []string{"q"}, Wait: 20 * time.Millisecond})
	if !errors.Is(err, job.ErrNoJob) {
		t.Fatalf("got %v, want ErrNoJob", err)
	}
}

func TestClaimAllQueues(t *testing.T) {
	t.Parallel()
	c := setup(t, server.Config{})
	ctx := context.Background()
	mustQueue(t, c, "a", job.LocalProcess)
	mustQueue(t, c, "b", job.LocalProcess)
	seen := map[string]bool{}
	for _, q := range []string{"a", "b"} {
		if _, err := c.Enqueue(ctx, shellJob(q)); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		cl, err := c.Claim(ctx, api.Claim{Agent: "a1", Queues: []string{api.AllQueues}})
		if err != nil {
			t.Fatal(err)
		}
		seen[cl.Job.Queue] = true
	}
	if !seen["a"] || !seen["b"] {
		t.Fatalf("claimed from %v, want both a and b", seen)
	}
}

func TestExpiredLeaseFencesOutTheOldHolder(t *testing.T) {
	t.Parallel()
	c := setup(t, server.Config{LeaseTTL: 300 * time.Millisecond, ReapEvery: 10 * time.Millisecond})
	ctx := context.Background()
	mustQueue(t, c, "q", job.LocalProcess)
	if _, err := c.Enqueue(ctx, shellJob("q")); err != nil {
		t.Fatal(err)
	}
	first, err := c.Claim(ctx, api.Claim{Agent: "a1", Queues: []string{"q"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Transition(ctx, first.Job.ID, api.Transition{Token: first.Job.Lease.Token, To: job.Starting, Reason: "started", ExternalID: "pid:1"}); err != nil {
		t.Fatal(err)
	}
	// Nobody renews: the reaper returns the job, and the claim below waits for it.
	second, err := c.Claim(ctx, api.Claim{Agent: "a2", Queues: []string{"q"}, Wait: 5 * time.Second})
	if err != nil {
		t.Fatalf("re-claim: %v", err)
	}
	if second.Job.ID != first.Job.ID || second.Job.Attempt != first.Job.Attempt || second.Job.ExternalID != "pid:1" {
		t.Fatalf("re-claimed %s attempt %d external %q, want %s attempt %d external pid:1",
			second.Job.ID, second.Job.Attempt, second.Job.ExternalID, first.Job.ID, first.Job.Attempt)
	}
	_, err = c.Transition(ctx, first.Job.ID, api.Transition{Token: first.Job.Lease.Token, To: job.Failed, Reason: "stale"})
	if !errors.Is(err, job.ErrLeaseLost) {
		t.Fatalf("stale transition: got %v, want ErrLeaseLost", err)
	}
	if err := c.AppendLogs(ctx, first.Job.ID, first.Job.Lease.Token, []job.LogLine{{Stream: "stdout", Text: "x"}}); !errors.Is(err, job.ErrLeaseLost) {
		t.Fatalf("stale logs: got %v, want ErrLeaseLost", err)
	}
	if _, err := c.Renew(ctx, second.Job.ID, second.Job.Lease.Token); err != nil {
		t.Fatalf("current holder's renew: %v", err)
	}
}

func TestLogsLongPollWakesOnAppend(t *testing.T) {
	t.Parallel()
	c := setup(t, server.Config{})
	ctx := context.Background()
	mustQueue(t, c, "q", job.LocalProcess)
	if _, err := c.Enqueue(ctx, shellJob("q")); err != nil {
		t.Fatal(err)
	}
	cl, err := c.Claim(ctx, api.Claim{Agent: "a1", Queues: []string{"q"}})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan api.Logs, 1)
	go func() {
		l, _ := c.Logs(ctx, cl.Job.ID, 0, 0, 10*time.Second)
		got <- l
	}()
	time.Sleep(50 * time.Millisecond)
	if err := c.AppendLogs(ctx, cl.Job.ID, cl.Job.Lease.Token, []job.LogLine{{Stream: "stdout", Text: "epoch 1"}}); err != nil {
		t.Fatal(err)
	}
	l := <-got
	if len(l.Lines) != 1 || l.Lines[0].Text != "epoch 1" || l.Next != l.Lines[0].Seq {
		t.Fatalf("got %+v, want the line epoch 1 and next = its seq", l)
	}
}

func TestCancelQueuedJob(t *testing.T) {
	t.Parallel()
	c := setup(t, server.Config{})
	ctx := context.Background()
	mustQueue(t, c, "q", job.LocalProcess)
	j, err := c.Enqueue(ctx, shellJob("q"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteQueue(ctx, "q"); !errors.Is(err, job.ErrConflict) {
		t.Fatalf("deleting a queue with a queued job: got %v, want ErrConflict", err)
	}
	j, err = c.Cancel(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != job.Canceled {
		t.Fatalf("state after cancel: got %s, want canceled", j.State)
	}
	if err := c.DeleteQueue(ctx, "q"); err != nil {
		t.Fatalf("deleting a queue whose jobs ended: %v", err)
	}
}

func TestPreemptedJobsAreRetriedWithinTheBudget(t *testing.T) {
	t.Parallel()
	c := setup(t, server.Config{MaxAttempts: 2})
	ctx := context.Background()
	mustQueue(t, c, "q", job.LocalProcess)
	if _, err := c.Enqueue(ctx, shellJob("q")); err != nil {
		t.Fatal(err)
	}
	for attempt := 1; attempt <= 2; attempt++ {
		cl, err := c.Claim(ctx, api.Claim{Agent: "a1", Queues: []string{"q"}})
		if err != nil {
			t.Fatalf("attempt %d: claim: %v", attempt, err)
		}
		if cl.Job.Attempt != attempt || cl.Job.ExternalID != "" {
			t.Fatalf("claimed attempt %d with external id %q, want attempt %d, none", cl.Job.Attempt, cl.Job.ExternalID, attempt)
		}
		tok := cl.Job.Lease.Token
		if _, err := c.Transition(ctx, cl.Job.ID, api.Transition{Token: tok, To: job.Running, Reason: "training", ExternalID: "tj-" + string(rune('0'+attempt))}); err != nil {
			t.Fatal(err)
		}
		j, err := c.Transition(ctx, cl.Job.ID, api.Transition{Token: tok, To: job.Preempted, Reason: "Interrupted"})
		if err != nil {
			t.Fatal(err)
		}
		want := job.Queued
		if attempt == 2 {
			want = job.Preempted // out of attempts
		}
		if j.State != want {
			t.Fatalf("after preemption of attempt %d: got %s (%s), want %s", attempt, j.State, j.Reason, want)
		}
	}
}

func TestClaimSeesAQueueUpdateAtOnce(t *testing.T) {
	t.Parallel()
	c := setup(t, server.Config{})
	ctx := context.Background()
	mustQueue(t, c, "q", job.LocalProcess)
	claimConfig := func() string {
		t.Helper()
		if _, err := c.Enqueue(ctx, shellJob("q")); err != nil {
			t.Fatal(err)
		}
		cl, err := c.Claim(ctx, api.Claim{Agent: "a1", Queues: []string{"q"}})
		if err != nil {
			t.Fatal(err)
		}
		var compact bytes.Buffer
		_ = json.Compact(&compact, cl.Queue.Config)
		return compact.String()
	}
	claimConfig() // the queue is now read and kept for claims
	if _, err := c.UpdateQueue(ctx, api.CreateQueue{Name: "q", Config: []byte(`{"v":2}`)}); err != nil {
		t.Fatal(err)
	}
	if got := claimConfig(); got != `{"v":2}` {
		t.Fatalf("config in the claim after an update: got %s, want {\"v\":2}", got)
	}
}

// TestClientHangUpIsNotAnError checks that a request whose client hung up
// while the store was answering is logged as what it is, not as an error.
func TestClientHangUpIsNotAnError(t *testing.T) {
	t.Parallel()
	var logs logtest.Buffer
	srv, c := setupServer(t, server.Config{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	mustQueue(t, c, "q", job.LocalProcess)
	j, err := c.Enqueue(context.Background(), api.Enqueue{Queue: "q", Spec: job.Spec{Entrypoint: []string{"true"}}})
	if err != nil {
		t.Fatal(err)
	}
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequestWithContext(gone, http.MethodGet, "/v1/jobs/"+j.ID, nil)
	srv.ServeHTTP(httptest.NewRecorder(), req)
	if !strings.Contains(logs.String(), "request ended by its client") || strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("a client's hang-up: want it noted at debug level, not as an error; the log:\n%s", logs.String())
	}
}

package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/client"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/server"
	"github.com/slipway-ml/slipway/internal/store"
)

func TestIdempotencyKeyMakesOneJob(t *testing.T) {
	t.Parallel()
	c := setup(t, server.Config{})
	ctx := context.Background()
	mustQueue(t, c, "q", job.LocalProcess)
	first, created, err := c.EnqueueOnce(ctx, "key-1", shellJob("q"))
	if err != nil || !created {
		t.Fatalf("first enqueue with a key: got created %v, %v; want a new job", created, err)
	}
	again, created, err := c.EnqueueOnce(ctx, "key-1", shellJob("q"))
	if err != nil || created || again.ID != first.ID {
		t.Fatalf("same key again: got %s created %v, %v; want the first job %s, not created", again.ID, created, err, first.ID)
	}

	// Racing requests with one key: one job, one 201, the rest 200.
	const racers = 16
	var wg sync.WaitGroup
	ids := make([]string, racers)
	news := make([]bool, racers)
	errs := make([]error, racers)
	for i := range racers {
		wg.Go(func() {
			j, n, err := c.EnqueueOnce(ctx, "race", shellJob("q"))
			ids[i], news[i], errs[i] = j.ID, n, err
		})
	}
	wg.Wait()
	createdCount := 0
	for i := range racers {
		if errs[i] != nil {
			t.Fatalf("racer %d: %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("racers got jobs %v, want one", ids)
		}
		if news[i] {
			createdCount++
		}
	}
	if createdCount != 1 {
		t.Fatalf("racers told created: got %d, want 1", createdCount)
	}
	js, err := c.Jobs(ctx, "q", "", 0)
	if err != nil || len(js) != 2 {
		t.Fatalf("jobs in q: got %d, %v; want 2 (one per key)", len(js), err)
	}

	// A key the server cannot keep is refused before anything is stored.
	body, _ := json.Marshal(shellJob("q"))
	req, _ := http.NewRequest(http.MethodPost, c.URL()+"/v1/jobs", bytes.NewReader(body))
	req.Header.Set(api.IdempotencyKeyHeader, string(bytes.Repeat([]byte("k"), 300)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a 300-byte key: got status %d, want 400", resp.StatusCode)
	}
}

func TestQueueMaxRunning(t *testing.T) {
	t.Parallel()
	c := setup(t, server.Config{})
	ctx := context.Background()
	one := 1
	if _, err := c.CreateQueue(ctx, api.CreateQueue{Name: "q", Resource: job.LocalProcess, MaxRunning: &one}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := c.Enqueue(ctx, shellJob("q")); err != nil {
			t.Fatal(err)
		}
	}
	first, err := c.Claim(ctx, api.Claim{Agent: "a1", Queues: []string{"q"}})
	if err != nil {
		t.Fatal(err)
	}
	if first.Queue.MaxRunning != 1 {
		t.Fatalf("claimed queue: got max_running %d, want 1", first.Queue.MaxRunning)
	}
	if _, err := c.Claim(ctx, api.Claim{Agent: "a2", Queues: []string{"q"}}); !errors.Is(err, job.ErrNoJob) {
		t.Fatalf("second agent's claim at the cap: got %v, want no job", err)
	}
	// A claim waiting at the cap gets the job as soon as a slot frees.
	got := make(chan error, 1)
	go func() {
		_, err := c.Claim(ctx, api.Claim{Agent: "a2", Queues: []string{"q"}, Wait: 10 * time.Second})
		got <- err
	}()
	if _, err := c.Transition(ctx, first.Job.ID, api.Transition{Token: first.Job.Lease.Token, To: job.Finished, Reason: "done"}); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("waiting claim after a slot freed: %v", err)
	}
	// Raising the cap alone keeps the config; the new cap admits one more.
	two := 2
	q, err := c.UpdateQueue(ctx, api.CreateQueue{Name: "q", MaxRunning: &two})
	if err != nil || q.MaxRunning != 2 {
		t.Fatalf("updating the cap: got %d, %v; want 2", q.MaxRunning, err)
	}
	if _, err := c.Claim(ctx, api.Claim{Agent: "a3", Queues: []string{"q"}}); err != nil {
		t.Fatalf("claim under the raised cap: %v", err)
	}
	neg := -1
	if _, err := c.UpdateQueue(ctx, api.CreateQueue{Name: "q", MaxRunning: &neg}); !errors.Is(err, job.ErrInvalid) {
		t.Fatalf("a cap of -1: got %v, want invalid", err)
	}
}

func TestReleaseHandsOverAtOnce(t *testing.T) {
	t.Parallel()
	// A lease that never expires during the test: only the release can
	// bring the job back.
	c := setup(t, server.Config{LeaseTTL: time.Hour})
	ctx := context.Background()
	mustQueue(t, c, "q", job.SageMaker)
	if _, err := c.UpdateQueue(ctx, api.CreateQueue{Name: "q", Config: json.RawMessage(
		`{"RoleArn": "arn:aws:iam::000000000000:role/R", "OutputDataConfig": {"S3OutputPath": "s3://b/out"},
		  "ResourceConfig": {"InstanceType": "ml.m4.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 2},
		  "StoppingCondition": {"MaxRuntimeInSeconds": 3600}}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Enqueue(ctx, api.Enqueue{Queue: "q", Spec: job.Spec{Image: "img:1"}}); err != nil {
		t.Fatal(err)
	}
	first, err := c.Claim(ctx, api.Claim{Agent: "a1", Queues: []string{"q"}})
	if err != nil {
		t.Fatal(err)
	}
	tok := first.Job.Lease.Token
	for _, tr := range []api.Transition{{To: job.Submitting, Reason: "submitting"}, {To: job.Starting, Reason: "started", ExternalID: "tj-1"}} {
		tr.Token = tok
		if _, err := c.Transition(ctx, first.Job.ID, tr); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan api.Claimed, 1)
	go func() {
		cl, err := c.Claim(ctx, api.Claim{Agent: "a2", Queues: []string{"q"}, Wait: 10 * time.Second})
		if err != nil {
			t.Error(err)
		}
		got <- cl
	}()
	r, err := c.Release(ctx, first.Job.ID, tok, "agent a1 shutting down")
	if err != nil {
		t.Fatalf("releasing: %v", err)
	}
	if r.State != job.Queued || r.ExternalID != "tj-1" {
		t.Fatalf("released: got %s external id %q, want queued with tj-1", r.State, r.ExternalID)
	}
	second := <-got
	if second.Job.ID != first.Job.ID || second.Job.ExternalID != "tj-1" || second.Job.Attempt != 1 {
		t.Fatalf("next claim: got %s external %q attempt %d, want %s, tj-1, attempt 1", second.Job.ID, second.Job.ExternalID, second.Job.Attempt, first.Job.ID)
	}
	if _, err := c.Release(ctx, first.Job.ID, tok, "again"); !errors.Is(err, job.ErrLeaseLost) {
		t.Fatalf("releasing with the old token: got %v, want lease lost", err)
	}
}

// TestLostLocalProcessIsNotStartedTwice hands back a local-process job that
// its agent was starting, with no process id recorded: the next claim must
// not get it to start again, and the job ends failed as lost.
func TestLostLocalProcessIsNotStartedTwice(t *testing.T) {
	t.Parallel()
	c := setup(t, server.Config{LeaseTTL: time.Hour})
	lost, fresh := handBackMidStart(t, c)
	checkLostNotHandedOut(t, c, lost, fresh)
}

// getJobFails is a store whose GetJob fails while fail is set.
type getJobFails struct {
	store.Store
	fail atomic.Bool
}

func (s *getJobFails) GetJob(ctx context.Context, id string) (job.Job, error) {
	if s.fail.Load() {
		return job.Job{}, errors.New("store unreachable")
	}
	return s.Store.GetJob(ctx, id)
}

// TestLostLocalProcessIsNotStartedTwiceAfterAFailedClaim is
// TestLostLocalProcessIsNotStartedTwice with a claim between the hand-back
// and the next claim that the server could not hand out (its store failed
// as it checked the job, so the job went back): that claim started
// nothing, and the next one must still end the job as lost.
func TestLostLocalProcessIsNotStartedTwiceAfterAFailedClaim(t *testing.T) {
	t.Parallel()
	st := &getJobFails{}
	_, _, c, _ := authServer(t, server.Config{LeaseTTL: time.Hour}, func(s store.Store) store.Store { st.Store = s; return st })
	lost, fresh := handBackMidStart(t, c)
	st.fail.Store(true)
	if _, err := c.Claim(context.Background(), api.Claim{Agent: "a2", Queues: []string{"q"}}); err == nil {
		t.Fatal("a claim while the store fails: got no error")
	}
	st.fail.Store(false)
	checkLostNotHandedOut(t, c, lost, fresh)
}

// handBackMidStart enqueues two local-process jobs on a new queue q and
// has agent a1 claim the first, move it to submitting and hand it back
// with no process id: a job lost while it was being started.
func handBackMidStart(t *testing.T, c *client.Client) (lost, fresh job.Job) {
	t.Helper()
	ctx := context.Background()
	mustQueue(t, c, "q", job.LocalProcess)
	lost, err := c.Enqueue(ctx, shellJob("q"))
	if err != nil {
		t.Fatal(err)
	}
	if fresh, err = c.Enqueue(ctx, shellJob("q")); err != nil {
		t.Fatal(err)
	}
	first, err := c.Claim(ctx, api.Claim{Agent: "a1", Queues: []string{"q"}})
	if err != nil || first.Job.ID != lost.ID {
		t.Fatalf("first claim: got %s, %v; want %s", first.Job.ID, err, lost.ID)
	}
	if _, err := c.Transition(ctx, lost.ID, api.Transition{Token: first.Job.Lease.Token, To: job.Submitting, Reason: "submitting"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Release(ctx, lost.ID, first.Job.Lease.Token, "gone"); err != nil {
		t.Fatal(err)
	}
	return lost, fresh
}

// checkLostNotHandedOut claims once more: the claim must get fresh, and
// lost must have ended failed in its first attempt.
func checkLostNotHandedOut(t *testing.T, c *client.Client, lost, fresh job.Job) {
	t.Helper()
	ctx := context.Background()
	next, err := c.Claim(ctx, api.Claim{Agent: "a3", Queues: []string{"q"}})
	if err != nil || next.Job.ID != fresh.ID {
		t.Fatalf("next claim: got %s, %v; want the other job %s", next.Job.ID, err, fresh.ID)
	}
	j, err := c.Job(ctx, lost.ID)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != job.Failed || j.Attempt != 1 {
		t.Fatalf("lost job: got %s attempt %d (%s), want failed attempt 1", j.State, j.Attempt, j.Reason)
	}
}

// TestClaimRoundRobinAcrossQueues checks fairness: an agent serving every
// queue gets them in turn, not the first queue until it is empty.
func TestClaimRoundRobinAcrossQueues(t *testing.T) {
	t.Parallel()
	c := setup(t, server.Config{})
	ctx := context.Background()
	for _, q := range []string{"a", "b", "c"} {
		mustQueue(t, c, q, job.LocalProcess)
		for range 4 {
			if _, err := c.Enqueue(ctx, shellJob(q)); err != nil {
				t.Fatal(err)
			}
		}
	}
	counts := map[string]int{}
	for range 6 {
		cl, err := c.Claim(ctx, api.Claim{Agent: "a1", Queues: []string{api.AllQueues}})
		if err != nil {
			t.Fatal(err)
		}
		counts[cl.Job.Queue]++
	}
	for _, q := range []string{"a", "b", "c"} {
		if counts[q] != 2 {
			t.Fatalf("six claims over three queues: got %v, want 2 from each", counts)
		}
	}
}

func TestDrainEndsLongPolls(t *testing.T) {
	t.Parallel()
	srv, c := setupServer(t, server.Config{})
	ctx := context.Background()
	mustQueue(t, c, "q", job.LocalProcess)
	j, err := c.Enqueue(ctx, shellJob("q"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Claim(ctx, api.Claim{Agent: "a1", Queues: []string{"q"}}); err != nil {
		t.Fatal(err)
	}
	claim := make(chan error, 1)
	logs := make(chan error, 1)
	go func() {
		_, err := c.Claim(ctx, api.Claim{Agent: "a2", Queues: []string{"q"}, Wait: time.Hour})
		claim <- err
	}()
	go func() {
		_, err := c.Logs(ctx, j.ID, 0, 0, time.Hour)
		logs <- err
	}()
	srv.Drain()
	if err := <-claim; !errors.Is(err, job.ErrNoJob) {
		t.Fatalf("claim in flight at drain: got %v, want no job", err)
	}
	if err := <-logs; err != nil {
		t.Fatalf("log poll in flight at drain: got %v, want an answer", err)
	}
}

// FuzzDecodeRequests sends arbitrary bodies to every endpoint that decodes
// one: the server answers each with a status below 500 and a JSON error
// body for the refused ones, and never fails.
func FuzzDecodeRequests(f *testing.F) {
	for _, seed := range []string{
		`{"queue": "q", "spec": {"entrypoint": ["sh"]}}`,
		`{"queue": "q", "priority": "high", "spec": {"image": "x", "env": {"": "1"}}}`,
		`{"queue": "q", "spec": {"run_config": [1]}, "code": "!!"}`,
		`{"name": "q2", "resource": "local-process", "max_running": -3}`,
		`{"agent": "a", "queues": ["q"], "wait": 1}`,
		`{"token": 1, "to": "nowhere"}`,
		`{"token": 1, "lines": [{"text": "x"}]}`,
		`{} {}`, `[`, `null`, `{"unknown": 1}`,
	} {
		f.Add(seed, uint8(0))
	}
	// Long polls in the bodies wait no longer than a blink.
	srv, c := setupServer(f, server.Config{MaxWait: time.Millisecond})
	mustQueue(f, c, "q", job.LocalProcess)
	paths := []string{"/v1/jobs", "/v1/queues", "/v1/claim", "/v1/agents", "/v1/jobs/x/transition",
		"/v1/jobs/x/renew", "/v1/jobs/x/release", "/v1/jobs/x/logs", "/v1/queues/q"}
	f.Fuzz(func(t *testing.T, body string, which uint8) {
		path := paths[int(which)%len(paths)]
		method := http.MethodPost
		if path == "/v1/queues/q" {
			method = http.MethodPut
		}
		req, err := http.NewRequest(method, path, bytes.NewReader([]byte(body)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(api.IdempotencyKeyHeader, fmt.Sprintf("fuzz-%d", len(body)%7))
		rec := httptest.NewRecorder()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.ServeHTTP(rec, req.WithContext(ctx))
		if rec.Code >= 500 {
			t.Fatalf("%s %s with %q: got status %d: %s", method, path, body, rec.Code, rec.Body.String())
		}
		if rec.Code >= 400 {
			var e api.Error
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Code == "" || e.Message == "" {
				t.Fatalf("%s %s with %q: status %d with body %q, want a JSON error", method, path, body, rec.Code, rec.Body.String())
			}
		}
	})
}

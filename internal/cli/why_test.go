package cli

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/client"
	"github.com/slipway-ml/slipway/internal/job"
)

// serverOnly runs a real server on SQLite with no agent, and returns its
// URL and a client.
func serverOnly(t *testing.T) (string, *client.Client) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := openStore(ctx, filepath.Join(t.TempDir(), "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := startServer(ctx, "127.0.0.1:0", st, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = srv.wait()
		st.Close()
	})
	c, err := client.New(srv.url)
	if err != nil {
		t.Fatal(err)
	}
	return srv.url, c
}

func why(t *testing.T, url, id string) whyAnswer {
	t.Helper()
	code, stdout, stderr := run(t, url, "job", "why", id, "-o", "json")
	var ans whyAnswer
	if code != 0 || json.Unmarshal([]byte(stdout), &ans) != nil {
		t.Fatalf("job why %s: exit %d, %q %q; want 0 and JSON", id, code, stdout, stderr)
	}
	return ans
}

func mentions(t *testing.T, ans whyAnswer, wants ...string) {
	t.Helper()
	all := strings.Join(ans.Reasons, "\n")
	for _, w := range wants {
		if !strings.Contains(all, w) {
			t.Errorf("job why %s (%s): got %q, want a reason mentioning %q", ans.ID, ans.State, ans.Reasons, w)
		}
	}
}

// TestJobWhyAgainstARealServer walks one queue through the cases `job why`
// explains: position and no agent, a lease and a full agent, SageMaker's
// status, and a failure with its reason and output.
func TestJobWhyAgainstARealServer(t *testing.T) {
	t.Parallel()
	url, c := serverOnly(t)
	ctx := context.Background()
	if _, err := c.CreateQueue(ctx, api.CreateQueue{Name: "q", Resource: job.LocalProcess}); err != nil {
		t.Fatal(err)
	}
	enqueue := func(p job.Priority) job.Job {
		j, err := c.Enqueue(ctx, api.Enqueue{Queue: "q", Priority: p, Spec: job.Spec{Entrypoint: []string{"true"}}})
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	medium, high := enqueue(job.Medium), enqueue(job.High)
	enqueue(job.Low)

	ans := why(t, url, medium.ID)
	if ans.State != job.Queued {
		t.Fatalf("state: got %s, want queued", ans.State)
	}
	mentions(t, ans, "number 2 in queue q", high.ID+" (high)", "no agent serves queue q")

	if _, err := c.RegisterAgent(ctx, job.Agent{ID: "a-one", Name: "box", Queues: []string{"q"}, MaxJobs: 1}); err != nil {
		t.Fatal(err)
	}
	claimed, err := c.Claim(ctx, api.Claim{Agent: "a-one", Queues: []string{"q"}, Wait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if claimed.Job.ID != high.ID {
		t.Fatalf("claimed %s, want the high-priority %s", claimed.Job.ID, high.ID)
	}
	mentions(t, why(t, url, medium.ID), "it is first in queue q", "concurrency limit", "box (a-one) runs 1 of max_jobs 1")

	tok := claimed.Job.Lease.Token
	if _, err := c.Transition(ctx, high.ID, api.Transition{Token: tok, To: job.Starting, Reason: "Starting"}); err != nil {
		t.Fatal(err)
	}
	lines := []job.LogLine{
		{Stream: "slipway", Text: "SageMaker: Starting: Preparing the instances for training"},
		{Stream: "stdout", Text: "loading data"},
		{Stream: "stderr", Text: "boom: out of memory"},
	}
	if err := c.AppendLogs(ctx, high.ID, tok, lines); err != nil {
		t.Fatal(err)
	}
	mentions(t, why(t, url, high.ID), "agent box (a-one) holds its lease until", "its run is starting",
		"SageMaker's latest status: Starting: Preparing the instances for training")

	if _, err := c.Transition(ctx, high.ID, api.Transition{Token: tok, To: job.Failed, Reason: "AlgorithmError: exit code 4"}); err != nil {
		t.Fatal(err)
	}
	ans = why(t, url, high.ID)
	mentions(t, ans, "it failed at", "by a-one: AlgorithmError: exit code 4", "loading data\nboom: out of memory")

	code, stdout, _ := run(t, url, "job", "why", high.ID)
	if code != 0 || !strings.HasPrefix(stdout, "job "+high.ID+" is failed\n  - it failed at") {
		t.Errorf("job why as text: exit %d, %q; want a heading line and the reasons as a list", code, stdout)
	}
	if code, _, stderr := run(t, url, "job", "why", "j-missing"); code != 1 || !strings.Contains(stderr, "not found") {
		t.Errorf("job why of a missing job: exit %d, %q; want 1 and not found", code, stderr)
	}
}

func TestExplainQueued(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	j := job.Job{ID: "j-1", Queue: "sm", State: job.Queued, Attempt: 1, CreatedAt: now.Add(-time.Hour)}
	notReady := &job.Queue{Name: "sm", Resource: job.SageMaker, Missing: []string{"RoleArn", "OutputDataConfig.S3OutputPath"}}
	tests := []struct {
		name  string
		f     whyFacts
		wants []string
	}{
		{"not ready, agent stale", whyFacts{Job: j, Queue: notReady, Queued: []job.Job{j}, Now: now,
			Agents: []job.Agent{{ID: "a-1", Queues: []string{"sm"}, LastSeen: now.Add(-10 * time.Minute)}}},
			[]string{"queue sm is not ready: fill RoleArn and OutputDataConfig.S3OutputPath", "has been seen in the last 2m0s: a-1 (last seen 10m0s ago)"}},
		{"agent serving all queues with room", whyFacts{Job: j, Queue: &job.Queue{Name: "sm"}, Now: now,
			Agents: []job.Agent{{ID: "a-2", Name: "a-2", Queues: []string{"*"}, MaxJobs: -1, LastSeen: now}}},
			[]string{"served by a-2, with a free slot"}},
		{"lease expired, re-attach", whyFacts{Job: job.Job{ID: "j-1", Queue: "sm", State: job.Queued, ExternalID: "j-1-a1", Reason: "lease expired"},
			Queue: &job.Queue{Name: "sm"}, Now: now},
			[]string{"re-attaches to j-1-a1"}},
		{"queue deleted", whyFacts{Job: j, Now: now}, []string{"its queue sm no longer exists"}},
	}
	for _, tt := range tests {
		got := strings.Join(explain(tt.f), "\n")
		for _, w := range tt.wants {
			if !strings.Contains(got, w) {
				t.Errorf("%s: got %q, want it to mention %q", tt.name, got, w)
			}
		}
	}
}

func TestJobsAheadByPriorityThenAge(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	me := job.Job{ID: "j-me", Priority: job.Medium, CreatedAt: t0.Add(2 * time.Second)}
	queued := []job.Job{
		{ID: "j-old-low", Priority: job.Low, CreatedAt: t0},
		{ID: "j-old-medium", Priority: job.Medium, CreatedAt: t0.Add(time.Second)},
		me,
		{ID: "j-new-critical", Priority: job.Critical, CreatedAt: t0.Add(3 * time.Second)},
		{ID: "j-new-medium", Priority: job.Medium, CreatedAt: t0.Add(4 * time.Second)},
	}
	var got []string
	for _, a := range jobsAhead(me, queued) {
		got = append(got, a.ID)
	}
	if want := "j-new-critical,j-old-medium"; strings.Join(got, ",") != want {
		t.Errorf("jobs ahead: got %v, want %s", got, want)
	}
}

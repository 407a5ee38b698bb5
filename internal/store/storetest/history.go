package storetest

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
)

// checkPath fails unless events form one path through the lifecycle: the
// first from nowhere to queued, each from where the one before went, in
// increasing Seq and non-decreasing time, every one allowed by the lifecycle.
func checkPath(t *testing.T, j job.Job) {
	t.Helper()
	if len(j.Events) == 0 {
		t.Fatalf("job %s has no events", j.ID)
	}
	var prev job.Event
	for i, e := range j.Events {
		if e.JobID != j.ID {
			t.Fatalf("event %d: got job %s, want %s", i, e.JobID, j.ID)
		}
		if e.Reason == "" || e.Actor == "" {
			t.Fatalf("event %d (%s): got reason %q by %q; every transition says why and who", i, e.To, e.Reason, e.Actor)
		}
		if i == 0 {
			if e.From != "" || e.To != job.Queued {
				t.Fatalf("first event: got %s → %s, want from nothing to queued", e.From, e.To)
			}
		} else {
			if e.From != prev.To {
				t.Fatalf("event %d: got from %s, want %s, where event %d went", i, e.From, prev.To, i-1)
			}
			if e.Seq <= prev.Seq || e.At.Before(prev.At) {
				t.Fatalf("event %d: got seq %d at %v after seq %d at %v; want later", i, e.Seq, e.At, prev.Seq, prev.At)
			}
			if !job.CanTransition(e.From, e.To) {
				t.Fatalf("event %d: %s → %s is not a move the lifecycle allows", i, e.From, e.To)
			}
		}
		prev = e
	}
	if prev.To != j.State {
		t.Fatalf("last event goes to %s, but the job is %s", prev.To, j.State)
	}
}

func testEventPath(t *testing.T, s *suite) {
	c := ctx(t)
	s.queue(t, "q")
	id := s.enqueue(t, "q", job.Medium).ID

	a := s.claim(t, "agent-a", "q")
	s.move(t, a, a.Lease.Token, job.Building, job.Submitting, job.Starting, job.Running, job.Preempted)
	if _, err := s.Requeue(c, id, "spot interrupted"); err != nil {
		t.Fatalf("requeueing: %v", err)
	}
	_, err := s.Claim(c, store.ClaimRequest{Agent: "agent-b", Queues: []string{"q"}, TTL: time.Millisecond})
	if err != nil {
		t.Fatalf("claiming: %v", err)
	}
	if _, err := s.ExpireLeases(c, time.Now().Add(time.Second)); err != nil {
		t.Fatalf("expiring: %v", err)
	}
	cj := s.claim(t, "agent-c", "q")
	s.move(t, cj, cj.Lease.Token, job.Running, job.Finished)

	j := s.get(t, id)
	checkPath(t, j)
	type step struct {
		to      job.State
		actor   string
		attempt int
	}
	want := []step{
		{job.Queued, "", 1},
		{job.Claimed, "agent-a", 1}, {job.Building, "agent-test", 1}, {job.Submitting, "agent-test", 1},
		{job.Starting, "agent-test", 1}, {job.Running, "agent-test", 1}, {job.Preempted, "agent-test", 1},
		{job.Queued, "", 2}, {job.Claimed, "agent-b", 2}, {job.Queued, "server", 2},
		{job.Claimed, "agent-c", 2}, {job.Running, "agent-test", 2}, {job.Finished, "agent-test", 2},
	}
	if len(j.Events) != len(want) {
		t.Fatalf("got %d events, want %d: %+v", len(j.Events), len(want), j.Events)
	}
	for i, w := range want {
		e := j.Events[i]
		if e.To != w.to || (w.actor != "" && e.Actor != w.actor) || e.Attempt != w.attempt {
			t.Fatalf("event %d: got to %s by %q attempt %d, want to %s by %q attempt %d", i, e.To, e.Actor, e.Attempt, w.to, w.actor, w.attempt)
		}
	}
	if r := j.Events[7].Reason; r != "spot interrupted" {
		t.Fatalf("requeue event reason: got %q, want %q", r, "spot interrupted")
	}
	if r := j.Events[6].Reason; r != "to preempted" {
		t.Fatalf("transition event reason: got %q, want %q", r, "to preempted")
	}
}

func testLogs(t *testing.T, s *suite) {
	c := ctx(t)
	s.queue(t, "q")
	id := s.enqueue(t, "q", job.Medium).ID
	at := time.Date(2025, 3, 1, 12, 0, 0, 123_000_000, time.UTC)

	first := s.claim(t, "agent-1", "q")
	lines := []job.LogLine{{At: at, Stream: "stdout", Text: "epoch 1"}, {At: at, Stream: "stderr", Text: "warning"}}
	if err := s.AppendLogs(c, id, first.Lease.Token, store.Holder{}, lines); err != nil {
		t.Fatalf("appending: %v", err)
	}
	if err := s.AppendLogs(c, id, first.Lease.Token, store.Holder{}, []job.LogLine{{At: at, Stream: "slipway", Text: "exit 1"}}); err != nil {
		t.Fatalf("appending: %v", err)
	}
	if err := s.AppendLogs(c, id, first.Lease.Token, store.Holder{}, nil); err != nil {
		t.Fatalf("appending no lines: %v", err)
	}
	s.move(t, first, first.Lease.Token, job.Failed)
	if _, err := s.Requeue(c, id, "retry"); err != nil {
		t.Fatalf("requeueing: %v", err)
	}
	second := s.claim(t, "agent-1", "q")
	if err := s.AppendLogs(c, id, second.Lease.Token, store.Holder{}, []job.LogLine{{At: at, Stream: "stdout", Text: "epoch 1 again"}, {At: at, Stream: "stdout", Text: "done"}}); err != nil {
		t.Fatalf("appending: %v", err)
	}

	all, err := s.ReadLogs(c, id, 0, 0, 0)
	if err != nil {
		t.Fatalf("reading: %v", err)
	}
	type line struct {
		attempt      int
		stream, text string
	}
	var got []line
	for i, l := range all {
		got = append(got, line{l.Attempt, l.Stream, l.Text})
		if i > 0 && l.Seq <= all[i-1].Seq {
			t.Fatalf("line %d: got seq %d after %d, want increasing", i, l.Seq, all[i-1].Seq)
		}
		if !l.At.Equal(at) {
			t.Fatalf("line %d: got time %v, want %v", i, l.At, at)
		}
	}
	want := []line{{1, "stdout", "epoch 1"}, {1, "stderr", "warning"}, {1, "slipway", "exit 1"}, {2, "stdout", "epoch 1 again"}, {2, "stdout", "done"}}
	if !slices.Equal(got, want) {
		t.Fatalf("all logs: got %+v, want %+v", got, want)
	}

	seqs := func(ls []job.LogLine) []int64 {
		var out []int64
		for _, l := range ls {
			out = append(out, l.Seq)
		}
		return out
	}
	cases := []struct {
		name    string
		attempt int
		after   int64
		limit   int
		want    []job.LogLine
	}{
		{"attempt 1", 1, 0, 0, all[:3]},
		{"attempt 2", 2, 0, 0, all[3:]},
		{"attempt 3", 3, 0, 0, nil},
		{"after", 0, all[1].Seq, 0, all[2:]},
		{"after within attempt", 1, all[0].Seq, 0, all[1:3]},
		{"limit", 0, 0, 2, all[:2]},
		{"after and limit", 0, all[2].Seq, 1, all[3:4]},
		{"after the end", 0, all[4].Seq, 0, nil},
	}
	for _, tc := range cases {
		ls, err := s.ReadLogs(c, id, tc.attempt, tc.after, tc.limit)
		if err != nil {
			t.Fatalf("%s: reading: %v", tc.name, err)
		}
		if got, want := seqs(ls), seqs(tc.want); !slices.Equal(got, want) {
			t.Fatalf("%s: got seqs %v, want %v", tc.name, got, want)
		}
	}
	_, err = s.ReadLogs(c, "missing", 0, 0, 0)
	wantErr(t, "reading the logs of a missing job", err, job.ErrNotFound)
}

func testAgents(t *testing.T, s *suite) {
	c := ctx(t)
	if as, err := s.ListAgents(c); err != nil || len(as) != 0 {
		t.Fatalf("listing no agents: got %v, %v; want none", as, err)
	}
	started := time.Date(2025, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
	b, err := s.RegisterAgent(c, job.Agent{ID: "agent-b", Name: "host-b", Queues: []string{"q1", "q2"}, MaxJobs: 4, Started: started})
	if err != nil {
		t.Fatalf("registering: %v", err)
	}
	if b.LastSeen.IsZero() || !b.Started.Equal(started) {
		t.Fatalf("registered agent: got started %v, last seen %v; want %v and a time", b.Started, b.LastSeen, started)
	}
	if _, err := s.RegisterAgent(c, job.Agent{ID: "agent-a", Name: "host-a", Queues: []string{"q1"}, MaxJobs: -1, Started: started}); err != nil {
		t.Fatalf("registering: %v", err)
	}
	if err := s.TouchAgent(c, "agent-b"); err != nil {
		t.Fatalf("touching: %v", err)
	}
	wantErr(t, "touching a missing agent", s.TouchAgent(c, "missing"), job.ErrNotFound)

	as, err := s.ListAgents(c)
	if err != nil {
		t.Fatalf("listing agents: %v", err)
	}
	if len(as) != 2 || as[0].ID != "agent-a" || as[1].ID != "agent-b" {
		t.Fatalf("agents: got %+v, want agent-a then agent-b", as)
	}
	got := as[1]
	if got.Name != "host-b" || !slices.Equal(got.Queues, []string{"q1", "q2"}) || got.MaxJobs != 4 || !got.Started.Equal(started) {
		t.Fatalf("agent-b: got %+v, want host-b, [q1 q2], 4, started %v", got, started)
	}
	if got.LastSeen.Before(b.LastSeen) {
		t.Fatalf("agent-b after touch: got last seen %v, want not before %v", got.LastSeen, b.LastSeen)
	}
	if as[0].MaxJobs != -1 {
		t.Fatalf("agent-a: got max jobs %d, want -1", as[0].MaxJobs)
	}

	if _, err := s.RegisterAgent(c, job.Agent{ID: "agent-b", Name: "host-b2", Queues: []string{"q3"}, MaxJobs: 1}); err != nil {
		t.Fatalf("registering again: %v", err)
	}
	as, err = s.ListAgents(c)
	if err != nil {
		t.Fatalf("listing agents: %v", err)
	}
	if len(as) != 2 || as[1].Name != "host-b2" || !slices.Equal(as[1].Queues, []string{"q3"}) || as[1].MaxJobs != 1 {
		t.Fatalf("after re-registering agent-b: got %+v, want two agents, agent-b replaced", as)
	}
}

// testReopen closes the store and opens it again: everything written before
// is there, and a lease held across the restart still works.
func testReopen(t *testing.T, s *suite) {
	c := ctx(t)
	s.queue(t, "q")
	code := []byte("code tarball")
	if _, err := s.Enqueue(c, job.Job{ID: job.NewID("j"), Queue: "q", Priority: job.Critical, Spec: spec(1)}, code); err != nil {
		t.Fatalf("enqueueing: %v", err)
	}
	waiting := s.enqueue(t, "q", job.Low)
	held := s.claim(t, "agent-1", "q")
	held = s.move(t, held, held.Lease.Token, job.Building)
	if err := s.AppendLogs(c, held.ID, held.Lease.Token, store.Holder{}, []job.LogLine{{Stream: "stdout", Text: "hello"}}); err != nil {
		t.Fatalf("appending: %v", err)
	}
	if _, err := s.RegisterAgent(c, job.Agent{ID: "agent-1", Name: "host", Queues: []string{"q"}, MaxJobs: 2}); err != nil {
		t.Fatalf("registering: %v", err)
	}

	beforeJob := s.get(t, held.ID)
	beforeQueues, err := s.ListQueues(c)
	if err != nil {
		t.Fatalf("listing queues: %v", err)
	}
	beforeLogs, err := s.ReadLogs(c, held.ID, 0, 0, 0)
	if err != nil {
		t.Fatalf("reading logs: %v", err)
	}
	beforeAgents, err := s.ListAgents(c)
	if err != nil {
		t.Fatalf("listing agents: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("closing: %v", err)
	}

	s.Store = s.reopen(t)
	sameJob(t, "job after reopen", s.get(t, held.ID), beforeJob)
	checkPath(t, beforeJob)
	if got, err := s.Code(c, held.ID); err != nil || !bytes.Equal(got, code) {
		t.Fatalf("code after reopen: got %q, %v; want %q", got, err, code)
	}
	qs, err := s.ListQueues(c)
	if err != nil || len(qs) != 1 || qs[0].Name != "q" || qs[0].Unfinished != 2 || !qs[0].CreatedAt.Equal(beforeQueues[0].CreatedAt) {
		t.Fatalf("queues after reopen: got %+v, %v; want %+v", qs, err, beforeQueues)
	}
	logs, err := s.ReadLogs(c, held.ID, 0, 0, 0)
	if err != nil || len(logs) != 1 || logs[0].Seq != beforeLogs[0].Seq || logs[0].Text != "hello" || !logs[0].At.Equal(beforeLogs[0].At) {
		t.Fatalf("logs after reopen: got %+v, %v; want %+v", logs, err, beforeLogs)
	}
	as, err := s.ListAgents(c)
	if err != nil || len(as) != 1 || as[0].ID != "agent-1" || !as[0].LastSeen.Equal(beforeAgents[0].LastSeen) {
		t.Fatalf("agents after reopen: got %+v, %v; want %+v", as, err, beforeAgents)
	}

	// The lease survived the restart, and the queue order too.
	s.move(t, held, held.Lease.Token, job.Finished)
	next := s.claim(t, "agent-1", "q")
	if next.ID != waiting.ID || next.Lease.Token <= 0 {
		t.Fatalf("claim after reopen: got %s token %d, want %s", next.ID, next.Lease.Token, waiting.ID)
	}
}

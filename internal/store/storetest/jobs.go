package storetest

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
)

func testEnqueueAndGet(t *testing.T, s *suite) {
	c := ctx(t)
	s.queue(t, "q")
	in := job.Job{
		ID: job.NewID("j"), Queue: "q", Priority: job.High,
		Spec: job.Spec{
			Image: "example/train:1", Entrypoint: []string{"python", "train.py"}, Args: []string{"--lr", "0.1"},
			Env: map[string]string{"A": "1"}, RunConfig: json.RawMessage(`{"epochs":3}`),
		},
	}
	before := time.Now().Add(-time.Second)
	j, err := s.Enqueue(c, in, nil)
	if err != nil {
		t.Fatalf("enqueueing: %v", err)
	}
	want := job.Job{
		ID: in.ID, Queue: "q", State: job.Queued, Reason: "enqueued", Attempt: 1, Priority: job.High,
		Image: "example/train:1", Spec: in.Spec, CreatedAt: j.CreatedAt, UpdatedAt: j.UpdatedAt,
	}
	sameJob(t, "enqueued job", j, want)
	if j.CreatedAt.Before(before) || j.CreatedAt.After(time.Now().Add(time.Second)) {
		t.Fatalf("created_at: got %v, want about now", j.CreatedAt)
	}

	got := s.get(t, j.ID)
	if len(got.Events) != 1 {
		t.Fatalf("events of a new job: got %d, want 1", len(got.Events))
	}
	e := got.Events[0]
	if e.JobID != j.ID || e.From != "" || e.To != job.Queued || e.Attempt != 1 || e.At.IsZero() {
		t.Fatalf("enqueue event: got %+v, want job %s, from empty to queued, attempt 1, a time", e, j.ID)
	}
	got.Events = nil
	sameJob(t, "GetJob after Enqueue", got, j)

	_, err = s.Enqueue(c, in, nil)
	wantErr(t, "enqueueing the same id twice", err, job.ErrExists)
	_, err = s.Enqueue(c, job.Job{ID: job.NewID("j"), Queue: "missing", Spec: spec(1)}, nil)
	wantErr(t, "enqueueing into a missing queue", err, job.ErrNotFound)
	_, err = s.GetJob(c, "missing")
	wantErr(t, "getting a missing job", err, job.ErrNotFound)
}

func testListJobs(t *testing.T, s *suite) {
	c := ctx(t)
	s.queue(t, "a")
	s.queue(t, "b")
	var a, b []job.Job // oldest first
	for i := range 3 {
		a = append(a, s.enqueue(t, "a", job.Medium))
		b = append(b, s.enqueue(t, "b", job.Priority(i)))
	}
	held := s.claim(t, "agent-1", "a") // a[0]

	cases := []struct {
		name string
		f    store.JobFilter
		want []job.Job
	}{
		{"all", store.JobFilter{}, []job.Job{b[2], a[2], b[1], a[1], b[0], a[0]}},
		{"queue", store.JobFilter{Queue: "a"}, []job.Job{a[2], a[1], a[0]}},
		{"state", store.JobFilter{State: job.Claimed}, []job.Job{a[0]}},
		{"queue and state", store.JobFilter{Queue: "a", State: job.Queued}, []job.Job{a[2], a[1]}},
		{"limit", store.JobFilter{Limit: 2}, []job.Job{b[2], a[2]}},
		{"queue with limit", store.JobFilter{Queue: "b", Limit: 1}, []job.Job{b[2]}},
		{"queues, limit applied after them", store.JobFilter{Queues: []string{"a", "nope"}, Limit: 2}, []job.Job{a[2], a[1]}},
		{"queues and state", store.JobFilter{Queues: []string{"a", "b"}, State: job.Claimed}, []job.Job{a[0]}},
		{"no match", store.JobFilter{Queue: "b", State: job.Running}, nil},
	}
	for _, tc := range cases {
		js, err := s.ListJobs(c, tc.f)
		if err != nil {
			t.Fatalf("%s: listing jobs: %v", tc.name, err)
		}
		if got, want := ids(js), ids(tc.want); !slices.Equal(got, want) {
			t.Fatalf("%s: got jobs %v, want %v", tc.name, got, want)
		}
		for _, j := range js {
			if len(j.Events) != 0 {
				t.Fatalf("%s: listed job %s has %d events, want none", tc.name, j.ID, len(j.Events))
			}
		}
	}
	js, err := s.ListJobs(c, store.JobFilter{State: job.Claimed})
	if err != nil {
		t.Fatalf("listing jobs: %v", err)
	}
	sameJob(t, "listed claimed job", js[0], held)
}

func testCode(t *testing.T, s *suite) {
	c := ctx(t)
	s.queue(t, "q")
	code := bytes.Repeat([]byte{0x1f, 0x8b, 0, 0xff, 'x'}, 50_000)
	with, err := s.Enqueue(c, job.Job{ID: job.NewID("j"), Queue: "q", Spec: job.Spec{CodeDigest: "sha256:00", CodeSize: int64(len(code))}}, code)
	if err != nil {
		t.Fatalf("enqueueing with code: %v", err)
	}
	got, err := s.Code(c, with.ID)
	if err != nil {
		t.Fatalf("reading code: %v", err)
	}
	if !bytes.Equal(got, code) {
		t.Fatalf("code: got %d bytes, want the %d enqueued", len(got), len(code))
	}
	without := s.enqueue(t, "q", job.Medium)
	_, err = s.Code(c, without.ID)
	wantErr(t, "reading the code of a job without code", err, job.ErrNotFound)
	_, err = s.Code(c, "missing")
	wantErr(t, "reading the code of a missing job", err, job.ErrNotFound)
}

func testCancel(t *testing.T, s *suite) {
	c := ctx(t)
	s.queue(t, "q")

	queued := s.enqueue(t, "q", job.Medium)
	j, err := s.Cancel(c, queued.ID, "changed my mind")
	if err != nil {
		t.Fatalf("canceling a queued job: %v", err)
	}
	if j.State != job.Canceled || j.Reason != "changed my mind" || j.Lease != nil {
		t.Fatalf("canceled queued job: got state %s, reason %q, lease %v; want canceled, the reason, no lease", j.State, j.Reason, j.Lease)
	}
	got := s.get(t, queued.ID)
	last := got.Events[len(got.Events)-1]
	if got.State != job.Canceled || last.From != job.Queued || last.To != job.Canceled || last.Reason != "changed my mind" {
		t.Fatalf("after canceling a queued job: got state %s, last event %+v; want canceled with a queued → canceled event", got.State, last)
	}

	s.enqueue(t, "q", job.Medium)
	held := s.claim(t, "agent-1", "q")
	held = s.move(t, held, held.Lease.Token, job.Running)
	j, err = s.Cancel(c, held.ID, "stop it")
	if err != nil {
		t.Fatalf("canceling a held job: %v", err)
	}
	if j.State != job.Running || !j.CancelRequested || j.Lease == nil || j.Lease.Token != held.Lease.Token {
		t.Fatalf("canceled held job: got state %s, cancel requested %v, lease %+v; want running, true, the same lease",
			j.State, j.CancelRequested, j.Lease)
	}
	if got := s.get(t, held.ID); got.State != job.Running || !got.CancelRequested {
		t.Fatalf("GetJob of a held job asked to cancel: got state %s, cancel requested %v; want running, true",
			got.State, got.CancelRequested)
	}
	renewed, err := s.Renew(c, held.ID, held.Lease.Token, store.Holder{}, ttl)
	if err != nil {
		t.Fatalf("renewing: %v", err)
	}
	if !renewed.CancelRequested {
		t.Fatalf("Renew: got cancel requested false, want true so that the agent stops the job")
	}
	stopped := s.move(t, held, held.Lease.Token, job.Canceled)
	if stopped.Lease != nil {
		t.Fatalf("after the agent canceled: got lease %+v, want none", stopped.Lease)
	}

	for _, done := range []job.Job{stopped, s.get(t, queued.ID)} {
		done.Events = nil
		j, err := s.Cancel(c, done.ID, "again")
		if err != nil {
			t.Fatalf("canceling an ended job: %v", err)
		}
		sameJob(t, "canceling an ended job", j, done)
		after := s.get(t, done.ID)
		after.Events = nil
		sameJob(t, "GetJob after canceling an ended job", after, done)
	}

	_, err = s.Cancel(c, "missing", "")
	wantErr(t, "canceling a missing job", err, job.ErrNotFound)
}

func testRequeue(t *testing.T, s *suite) {
	c := ctx(t)
	s.queue(t, "q")
	for _, end := range []job.State{job.Failed, job.Preempted} {
		s.enqueue(t, "q", job.Medium)
		j := s.claim(t, "agent-1", "q")
		token := j.Lease.Token
		j, err := s.Transition(c, store.Update{JobID: j.ID, Token: token, To: job.Submitting, ExternalID: "train-1"})
		if err != nil {
			t.Fatalf("submitting: %v", err)
		}
		s.move(t, j, token, end)
		r, err := s.Requeue(c, j.ID, "retrying")
		if err != nil {
			t.Fatalf("requeueing a %s job: %v", end, err)
		}
		if r.State != job.Queued || r.Attempt != 2 || r.ExternalID != "" || r.Lease != nil || r.Reason != "retrying" {
			t.Fatalf("requeued %s job: got state %s, attempt %d, external id %q, lease %v, reason %q; want queued, 2, none, none, retrying",
				end, r.State, r.Attempt, r.ExternalID, r.Lease, r.Reason)
		}
		got := s.get(t, j.ID)
		last := got.Events[len(got.Events)-1]
		if last.From != end || last.To != job.Queued || last.Attempt != 2 {
			t.Fatalf("requeue event: got %+v, want %s → queued for attempt 2", last, end)
		}
		again := s.claim(t, "agent-2", "q")
		if again.ID != j.ID || again.Attempt != 2 || again.Lease.Token <= token {
			t.Fatalf("claim after requeue: got job %s attempt %d token %d, want %s attempt 2 token > %d",
				again.ID, again.Attempt, again.Lease.Token, j.ID, token)
		}
		s.move(t, again, again.Lease.Token, job.Finished)
	}

	// Every other state refuses.
	queued := s.enqueue(t, "q", job.Medium)
	_, err := s.Requeue(c, queued.ID, "")
	wantErr(t, "requeueing a queued job", err, job.ErrConflict)
	if _, err := s.Cancel(c, queued.ID, ""); err != nil {
		t.Fatalf("canceling: %v", err)
	}
	for _, st := range []job.State{job.Claimed, job.Running, job.Finished, job.Stopped, job.Canceled} {
		s.enqueue(t, "q", job.Medium)
		j := s.claim(t, "agent-1", "q")
		if st != job.Claimed {
			j = s.move(t, j, j.Lease.Token, st)
		}
		_, err := s.Requeue(c, j.ID, "")
		wantErr(t, "requeueing a "+string(st)+" job", err, job.ErrConflict)
		if got := s.get(t, j.ID); got.State != st || got.Attempt != 1 {
			t.Fatalf("after a refused requeue: got state %s attempt %d, want %s attempt 1", got.State, got.Attempt, st)
		}
	}
	_, err = s.Requeue(c, "missing", "")
	wantErr(t, "requeueing a missing job", err, job.ErrNotFound)
}

func testCountUnfinished(t *testing.T, s *suite) {
	c := ctx(t)
	s.queue(t, "a")
	s.queue(t, "b")
	s.queue(t, "empty")
	for range 3 {
		s.enqueue(t, "a", job.Medium)
	}
	gone := s.enqueue(t, "b", job.Medium)
	s.enqueue(t, "b", job.Medium)
	s.claim(t, "agent-1", "a")
	if _, err := s.Cancel(c, gone.ID, "not needed"); err != nil {
		t.Fatal(err)
	}
	got, err := s.CountUnfinished(c)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[job.State]int{"a": {job.Queued: 2, job.Claimed: 1}, "b": {job.Queued: 1}}
	if !maps.EqualFunc(got, want, maps.Equal) {
		t.Errorf("got %v, want %v (no final states, no empty queue)", got, want)
	}
}

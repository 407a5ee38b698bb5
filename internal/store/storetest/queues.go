package storetest

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
)

func testQueueCRUD(t *testing.T, s *suite) {
	c := ctx(t)
	in := job.Queue{Name: "train", Resource: job.SageMaker, Config: json.RawMessage(`{"RoleArn":"arn:aws:iam::1:role/x"}`)}
	q, err := s.CreateQueue(c, in)
	if err != nil {
		t.Fatalf("creating queue: %v", err)
	}
	if q.Name != in.Name || q.Resource != in.Resource || string(compact(q.Config)) != string(compact(in.Config)) {
		t.Fatalf("created queue: got %+v, want name, resource and config of %+v", q, in)
	}
	if q.CreatedAt.IsZero() || q.Unfinished != 0 {
		t.Fatalf("created queue: got created_at %v, unfinished %d; want a time and 0", q.CreatedAt, q.Unfinished)
	}
	_, err = s.CreateQueue(c, in)
	wantErr(t, "creating a queue twice", err, job.ErrExists)
	_, err = s.CreateQueue(c, job.Queue{Name: "no spaces", Resource: job.LocalProcess})
	wantErr(t, "creating a queue with a bad name", err, job.ErrInvalid)

	got, err := s.GetQueue(c, "train")
	if err != nil {
		t.Fatalf("getting queue: %v", err)
	}
	if got.Name != q.Name || got.Resource != q.Resource || !got.CreatedAt.Equal(q.CreatedAt) || string(compact(got.Config)) != string(compact(q.Config)) {
		t.Fatalf("got queue %+v, want %+v", got, q)
	}
	_, err = s.GetQueue(c, "missing")
	wantErr(t, "getting a missing queue", err, job.ErrNotFound)

	in.Config = json.RawMessage(`{"RoleArn":"arn:aws:iam::1:role/y"}`)
	in.Vars = []string{"n:int:1:8=1", "kind:string:enum=a,b"}
	if _, err := s.UpdateQueue(c, in); err != nil {
		t.Fatalf("updating queue: %v", err)
	}
	got, err = s.GetQueue(c, "train")
	if err != nil {
		t.Fatalf("getting queue: %v", err)
	}
	if string(compact(got.Config)) != string(compact(in.Config)) {
		t.Fatalf("after update: got config %s, want %s", got.Config, in.Config)
	}
	if !slices.Equal(got.Vars, in.Vars) {
		t.Fatalf("after update: got vars %q, want %q", got.Vars, in.Vars)
	}
	_, err = s.UpdateQueue(c, job.Queue{Name: "missing", Resource: job.LocalProcess})
	wantErr(t, "updating a missing queue", err, job.ErrNotFound)

	s.queue(t, "another")
	qs, err := s.ListQueues(c)
	if err != nil {
		t.Fatalf("listing queues: %v", err)
	}
	var names []string
	for _, q := range qs {
		names = append(names, q.Name)
	}
	if len(names) != 2 || names[0] != "another" || names[1] != "train" {
		t.Fatalf("listed queues: got %v, want [another train]", names)
	}

	wantErr(t, "deleting a missing queue", s.DeleteQueue(c, "missing"), job.ErrNotFound)
	if err := s.DeleteQueue(c, "train"); err != nil {
		t.Fatalf("deleting an empty queue: %v", err)
	}
	_, err = s.GetQueue(c, "train")
	wantErr(t, "getting a deleted queue", err, job.ErrNotFound)
	if _, err := s.CreateQueue(c, in); err != nil {
		t.Fatalf("creating a queue again after deleting it: %v", err)
	}
}

func testDeleteQueueWithJobs(t *testing.T, s *suite) {
	c := ctx(t)
	s.queue(t, "q")
	s.queue(t, "other")
	a := s.enqueue(t, "q", job.Medium)
	b := s.enqueue(t, "q", job.Medium)
	s.enqueue(t, "other", job.Medium)

	unfinished := func(want int) {
		t.Helper()
		q, err := s.GetQueue(c, "q")
		if err != nil {
			t.Fatalf("getting queue: %v", err)
		}
		if q.Unfinished != want {
			t.Fatalf("GetQueue: got %d unfinished, want %d", q.Unfinished, want)
		}
		qs, err := s.ListQueues(c)
		if err != nil {
			t.Fatalf("listing queues: %v", err)
		}
		for _, q := range qs {
			if q.Name == "q" && q.Unfinished != want {
				t.Fatalf("ListQueues: got %d unfinished, want %d", q.Unfinished, want)
			}
		}
	}
	unfinished(2)
	wantErr(t, "deleting a queue with queued jobs", s.DeleteQueue(c, "q"), job.ErrConflict)

	held := s.claim(t, "agent-1", "q")
	if held.ID != a.ID {
		t.Fatalf("claimed %s, want the oldest job %s", held.ID, a.ID)
	}
	if _, err := s.Cancel(c, b.ID, "not needed"); err != nil {
		t.Fatalf("canceling: %v", err)
	}
	unfinished(1)
	wantErr(t, "deleting a queue with a held job", s.DeleteQueue(c, "q"), job.ErrConflict)

	s.move(t, held, held.Lease.Token, job.Running, job.Finished)
	unfinished(0)
	if err := s.DeleteQueue(c, "q"); err != nil {
		t.Fatalf("deleting a queue whose jobs all ended: %v", err)
	}
	_, err := s.GetJob(c, a.ID)
	wantErr(t, "getting a job of a deleted queue", err, job.ErrNotFound)
	js, err := s.ListJobs(c, store.JobFilter{})
	if err != nil {
		t.Fatalf("listing jobs: %v", err)
	}
	if len(js) != 1 || js[0].Queue != "other" {
		t.Fatalf("jobs left after deleting q: got %v, want only the one of queue other", ids(js))
	}
}

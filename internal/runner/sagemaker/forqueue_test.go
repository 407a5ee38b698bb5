package sagemaker

import (
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/job"
)

// TestForQueueShares checks that the jobs of one queue share a runner
// while the queue's settings stay the same, whatever the counts a read
// fills in, and get a new one, with the new config, once they change.
func TestForQueueShares(t *testing.T) {
	t.Parallel()
	r := newRunner(Config{}.WithDefaults(), nil, nil)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	q := queue(t, "")
	q.CreatedAt, q.UpdatedAt = at, at
	first := r.ForQueue(q)

	again := q
	again.Config = append([]byte(nil), q.Config...) // a claim decodes its own copy
	again.Unfinished, again.Missing = 7, []string{"RoleArn"}
	again.UpdatedAt = at.In(time.FixedZone("elsewhere", 3600))
	if got := r.ForQueue(again); got != first {
		t.Errorf("ForQueue of the same queue read again: got a new runner, want the one made before")
	}

	changed := queue(t, `{"StoppingCondition": {"MaxRuntimeInSeconds": 120}}`)
	changed.CreatedAt, changed.UpdatedAt = at, at.Add(time.Minute)
	second := r.ForQueue(changed)
	if second == first {
		t.Fatalf("ForQueue after the queue's config changed: got the runner made before, want a new one")
	}
	if got, want := string(second.queue.Config), string(changed.Config); got != want {
		t.Errorf("runner's config: got %s, want %s", got, want)
	}
	if got := r.ForQueue(job.Queue{Name: "other", Resource: job.SageMaker, Config: q.Config}); got == second || got == first {
		t.Errorf("ForQueue of another queue: got a runner of %s, want one of its own", got.queue.Name)
	}
}

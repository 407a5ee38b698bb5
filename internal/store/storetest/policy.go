package storetest

import (
	"reflect"
	"testing"

	"github.com/slipway-ml/slipway/internal/job"
)

// testQueuePolicy checks that a queue's policy is kept as given, across a
// restart, replaced by an update, cleared by an empty one, and refused
// when malformed.
func testQueuePolicy(t *testing.T, s *suite) {
	p := &job.Policy{RoleArns: []string{"arn:aws:iam::123456789012:role/ok"}, Images: []string{"registry.example/team"},
		InstanceTypes: []string{"ml.m5.xlarge"}, MaxInstanceCount: 2, MaxRuntimeSeconds: 600, SpotRequired: true}
	q, err := s.CreateQueue(ctx(t), job.Queue{Name: "pol", Resource: job.SageMaker, Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(q.Policy, p) {
		t.Errorf("CreateQueue: policy %+v, want %+v", q.Policy, p)
	}
	s.Store = s.reopen(t)
	got, err := s.GetQueue(ctx(t), "pol")
	if err != nil || !reflect.DeepEqual(got.Policy, p) {
		t.Fatalf("GetQueue after a restart: policy %+v, %v; want %+v", got.Policy, err, p)
	}
	got.Policy = &job.Policy{MaxInstanceCount: 1}
	if got, err = s.UpdateQueue(ctx(t), got); err != nil || got.Policy == nil || got.Policy.MaxInstanceCount != 1 || len(got.Policy.RoleArns) != 0 {
		t.Fatalf("UpdateQueue: policy %+v, %v; want max_instance_count 1 alone", got.Policy, err)
	}
	got.Policy = &job.Policy{}
	if got, err = s.UpdateQueue(ctx(t), got); err != nil || got.Policy != nil {
		t.Fatalf("UpdateQueue with an empty policy: %+v, %v; want none", got.Policy, err)
	}
	_, err = s.CreateQueue(ctx(t), job.Queue{Name: "bad", Resource: job.SageMaker, Policy: &job.Policy{MaxInstanceCount: -1}})
	wantErr(t, "a queue with a negative max_instance_count", err, job.ErrInvalid)
}

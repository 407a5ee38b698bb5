package admission_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/admission"
	"github.com/slipway-ml/slipway/internal/job"
)

func TestPolicyAtEnqueue(t *testing.T) {
	t.Parallel()
	var c admission.Checker
	q := smQueue(designBody)
	q.Policy = &job.Policy{
		RoleArns:          []string{"arn:aws:iam::123456789012:role/SageMakerRole"},
		Images:            []string{"123456789012.dkr.ecr.us-east-2.amazonaws.com/r"},
		InstanceTypes:     []string{"ml.m4.xlarge"},
		MaxInstanceCount:  2,
		MaxRuntimeSeconds: 7200,
	}
	q, err := c.CheckQueue(q)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckJob(q, imageJob()); err != nil {
		t.Fatalf("a job inside the policy: %v", err)
	}
	for rule, args := range map[string]string{
		"role_arns":           `{"RoleArn": "arn:aws:iam::123456789012:role/Admin"}`,
		"instance_types":      `{"ResourceConfig": {"InstanceType": "ml.p4d.24xlarge"}}`,
		"max_instance_count":  `{"ResourceConfig": {"InstanceCount": 8}}`,
		"max_runtime_seconds": `{"StoppingCondition": {"MaxRuntimeInSeconds": 86400}}`,
	} {
		j := imageJob()
		j.Spec.ResourceArgs = json.RawMessage(args)
		err := c.CheckJob(q, j)
		if !errors.Is(err, job.ErrForbidden) || !strings.Contains(err.Error(), rule) {
			t.Errorf("resource args %s: got %v, want ErrForbidden naming %s", args, err, rule)
		}
	}
	j := imageJob()
	j.Spec.Image = "evil.example/miner:latest"
	if err := c.CheckJob(q, j); !errors.Is(err, job.ErrForbidden) || !strings.Contains(err.Error(), "images") {
		t.Errorf("a forbidden image: got %v, want ErrForbidden naming images", err)
	}

	// Code to build: no image to judge at enqueue; the agent judges the
	// built one before it submits.
	code := job.Job{ID: "j-0123456789abcdef", Queue: "sm", Spec: job.Spec{CodeDigest: "sha256:00", CodeSize: 1}}
	if err := c.CheckJob(q, code); err != nil {
		t.Fatalf("a job with code at enqueue: %v", err)
	}
	code.Image = "evil.example/built:sha256-00"
	if err := c.CheckPolicy(q, code); !errors.Is(err, job.ErrForbidden) {
		t.Errorf("the agent's check of a built image outside the policy: got %v, want ErrForbidden", err)
	}

	spot := smQueue(designBody)
	spot.Policy = &job.Policy{SpotRequired: true}
	if err := c.CheckJob(spot, imageJob()); !errors.Is(err, job.ErrForbidden) || !strings.Contains(err.Error(), "spot_required") {
		t.Errorf("an on-demand job on a spot-only queue: got %v, want ErrForbidden naming spot_required", err)
	}
	j = imageJob()
	j.Spec.ResourceArgs = json.RawMessage(`{"EnableManagedSpotTraining": true, "StoppingCondition": {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}}`)
	if err := c.CheckJob(spot, j); err != nil {
		t.Errorf("a spot job on a spot-only queue: %v", err)
	}
}

func TestPolicyOnLocalContainerImages(t *testing.T) {
	t.Parallel()
	var c admission.Checker
	q := job.Queue{Name: "lc", Resource: job.LocalContainer, Policy: &job.Policy{Images: []string{"localhost:5000/"}}}
	if _, err := c.CheckQueue(q); err != nil {
		t.Fatal(err)
	}
	ok := job.Job{Spec: job.Spec{Image: "localhost:5000/train:1"}}
	if err := c.CheckJob(q, ok); err != nil {
		t.Errorf("an allowed image: %v", err)
	}
	bad := job.Job{Spec: job.Spec{Image: "busybox"}}
	if err := c.CheckJob(q, bad); !errors.Is(err, job.ErrForbidden) {
		t.Errorf("a forbidden image: got %v, want ErrForbidden", err)
	}
	if _, err := c.CheckQueue(job.Queue{Name: "x", Resource: job.LocalProcess, Policy: &job.Policy{RoleArns: []string{"nope"}}}); !errors.Is(err, job.ErrInvalid) {
		t.Errorf("a malformed policy: got %v, want ErrInvalid", err)
	}
}

func TestPolicyOnGitSources(t *testing.T) {
	t.Parallel()
	var c admission.Checker
	q := job.Queue{Name: "lp", Resource: job.LocalProcess, Policy: &job.Policy{GitURLs: []string{"https://git.example/acme/"}}}
	ok := job.Job{Spec: job.Spec{Entrypoint: []string{"sh", "train.sh"}, Git: &job.GitSource{URL: "https://git.example/acme/train"}}}
	if err := c.CheckJob(q, ok); err != nil {
		t.Errorf("an allowed repository: %v", err)
	}
	local := job.Job{Spec: job.Spec{Entrypoint: []string{"sh", "train.sh"}, Git: &job.GitSource{URL: "file:///srv/private"}}}
	if err := c.CheckJob(q, local); !errors.Is(err, job.ErrForbidden) || !strings.Contains(err.Error(), "git_urls") {
		t.Errorf("a repository on the agent's disk: got %v, want ErrForbidden naming git_urls", err)
	}
}

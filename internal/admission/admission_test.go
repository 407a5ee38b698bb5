package admission_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/admission"
	"github.com/slipway-ml/slipway/internal/config"
	"github.com/slipway-ml/slipway/internal/job"
)

// designBody is the queue body of ../shared/DESIGN.md with its two
// <REQUIRED> fields filled, as a user would write it.
const designBody = `{"RoleArn": "arn:aws:iam::123456789012:role/SageMakerRole", "EcrRepoName": "",
 "ResourceConfig": {"InstanceType": "ml.m4.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 2},
 "OutputDataConfig": {"S3OutputPath": "s3://my-bucket/output"},
 "StoppingCondition": {"MaxRuntimeInSeconds": 3600}}`

func smQueue(body string, vars ...string) job.Queue {
	return job.Queue{Name: "sm", Resource: job.SageMaker, Config: json.RawMessage(body), Vars: vars}
}

func imageJob() job.Job {
	return job.Job{ID: "j-0123456789abcdef", Queue: "sm", Attempt: 1, Spec: job.Spec{Image: "123456789012.dkr.ecr.us-east-2.amazonaws.com/r:1"}}
}

func TestSageMakerQueueWithoutConfigIsNotReady(t *testing.T) {
	t.Parallel()
	var c admission.Checker
	q, err := c.CheckQueue(job.Queue{Name: "sm", Resource: job.SageMaker})
	if err != nil {
		t.Fatalf("creating a sagemaker queue without config: %v", err)
	}
	if string(q.Config) != config.DefaultSageMakerQueue {
		t.Fatalf("stored config: got %s, want the default body", q.Config)
	}
	if got, want := c.Missing(q), []string{"RoleArn", "OutputDataConfig.S3OutputPath"}; !slices.Equal(got, want) {
		t.Fatalf("missing: got %q, want %q", got, want)
	}
	err = c.CheckJob(q, imageJob())
	if !errors.Is(err, job.ErrInvalid) || !strings.Contains(err.Error(), "RoleArn") || !strings.Contains(err.Error(), "not ready") {
		t.Fatalf("launching on an unready queue: got %v, want ErrInvalid naming RoleArn", err)
	}
}

func TestDesignBodyIsAcceptedAsWritten(t *testing.T) {
	t.Parallel()
	var c admission.Checker
	q, err := c.CheckQueue(smQueue(designBody))
	if err != nil {
		t.Fatalf("the DESIGN.md body: %v", err)
	}
	if m := c.Missing(q); len(m) != 0 {
		t.Fatalf("missing: got %q, want nothing", m)
	}
	if err := c.CheckJob(q, imageJob()); err != nil {
		t.Fatalf("launching on it: %v", err)
	}
	noImage := imageJob()
	noImage.Spec.Image = ""
	if err := c.CheckJob(q, noImage); !errors.Is(err, job.ErrInvalid) || !strings.Contains(err.Error(), "image") {
		t.Fatalf("a job with nothing to run: got %v, want ErrInvalid naming image", err)
	}
}

func TestBadQueueConfigsNameEveryPath(t *testing.T) {
	t.Parallel()
	var c admission.Checker
	body := strings.Replace(designBody, `"InstanceType": "ml.m4.xlarge"`, `"InstanceTyp": "ml.m4.xlarge"`, 1)
	body = strings.Replace(body, `"MaxRuntimeInSeconds": 3600`, `"MaxRuntimeInSeconds": "soon"`, 1)
	_, err := c.CheckQueue(smQueue(body))
	if !errors.Is(err, job.ErrInvalid) {
		t.Fatalf("got %v, want ErrInvalid", err)
	}
	for _, path := range []string{"ResourceConfig.InstanceTyp", "StoppingCondition.MaxRuntimeInSeconds"} {
		if !strings.Contains(err.Error(), path) {
			t.Errorf("error %q does not name %s", err, path)
		}
	}
}

func TestRequiredMembersAreCheckedAtCreation(t *testing.T) {
	t.Parallel()
	var c admission.Checker
	_, err := c.CheckQueue(smQueue(`{"RoleArn": "arn:aws:iam::123456789012:role/R", "OutputDataConfig": {"S3OutputPath": "s3://b/o"}}`))
	for _, path := range []string{"ResourceConfig", "StoppingCondition"} {
		if !errors.Is(err, job.ErrInvalid) || !strings.Contains(err.Error(), path+": missing") {
			t.Errorf("a body without %s: got %v, want ErrInvalid naming it", path, err)
		}
	}
}

func TestTemplateVariablesAreCheckedAtCreationAndLaunch(t *testing.T) {
	t.Parallel()
	var c admission.Checker
	body := strings.Replace(designBody, `"InstanceCount": 1`, `"InstanceCount": "{{n}}"`, 1)
	if _, err := c.CheckQueue(smQueue(body)); !errors.Is(err, job.ErrInvalid) || !strings.Contains(err.Error(), "n") {
		t.Fatalf("an undeclared variable: got %v, want ErrInvalid naming n", err)
	}
	q, err := c.CheckQueue(smQueue(body, "n:int:1:4=1"))
	if err != nil {
		t.Fatalf("a declared variable: %v", err)
	}
	j := imageJob()
	j.Spec.Vars = map[string]string{"n": "5"}
	if err := c.CheckJob(q, j); !errors.Is(err, job.ErrInvalid) || !strings.Contains(err.Error(), "n") {
		t.Fatalf("n=5 above its max 4: got %v, want ErrInvalid naming n", err)
	}
	j.Spec.Vars = map[string]string{"n": "2"}
	if err := c.CheckJob(q, j); err != nil {
		t.Fatalf("n=2: %v", err)
	}
}

func TestLocalQueuesTakeNoTemplates(t *testing.T) {
	t.Parallel()
	var c admission.Checker
	if _, err := c.CheckQueue(job.Queue{Name: "p", Resource: job.LocalProcess, Vars: []string{"n:int"}}); !errors.Is(err, job.ErrInvalid) {
		t.Fatalf("vars on a local-process queue: got %v, want ErrInvalid", err)
	}
	q := job.Queue{Name: "p", Resource: job.LocalProcess}
	j := job.Job{Spec: job.Spec{Entrypoint: []string{"true"}, Vars: map[string]string{"n": "1"}}}
	if err := c.CheckJob(q, j); !errors.Is(err, job.ErrInvalid) {
		t.Fatalf("--set-var on a local-process queue: got %v, want ErrInvalid", err)
	}
}

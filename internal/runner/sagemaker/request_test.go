package sagemaker

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/slipway-ml/slipway/internal/config"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/runner"
)

// readyBody is the DESIGN.md default queue body with its required fields filled.
const readyBody = `{"RoleArn": "arn:aws:iam::123456789012:role/SageMakerRole", "EcrRepoName": "my-repo",
 "ResourceConfig": {"InstanceType": "ml.m4.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 2},
 "OutputDataConfig": {"S3OutputPath": "s3://bucket/models"},
 "StoppingCondition": {"MaxRuntimeInSeconds": 3600}}`

// withMembers returns readyBody with members added or replaced.
func withMembers(t testing.TB, members string) string {
	t.Helper()
	var base, extra map[string]any
	if err := json.Unmarshal([]byte(readyBody), &base); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(members), &extra); err != nil {
		t.Fatalf("members %s: %v", members, err)
	}
	for k, v := range extra {
		base[k] = v
	}
	b, _ := json.Marshal(base)
	return string(b)
}

func testTask(attempt int, spec job.Spec) runner.Task {
	j := job.Job{ID: "j0123456789abcdef", Queue: "sm-queue", Attempt: attempt, Spec: spec}
	return runner.Task{Job: &j, Name: fmt.Sprintf("%s-a%d", j.ID, attempt)}
}

func smQueue(body string) job.Queue {
	return job.Queue{Name: "sm-queue", Resource: job.SageMaker, Config: json.RawMessage(body)}
}

func TestBuildRequestFillsTheJob(t *testing.T) {
	t.Parallel()
	spec := job.Spec{
		Image:      "123456789012.dkr.ecr.us-east-2.amazonaws.com/my-repo:abc",
		Entrypoint: []string{"python", "train.py"},
		Args:       []string{"--epochs", "3"},
		Env:        map[string]string{"WANDB_MODE": "offline", runner.EnvJobID: "spoofed"},
		RunConfig:  json.RawMessage(`{"lr": 0.01, "epochs": 3, "fast": true, "name": "a b", "layers": [64, 32], "opt": {"beta": 0.9}, "none": null}`),
	}
	body := withMembers(t, `{"HyperParameters": {"seed": "7"}, "Tags": [{"Key": "team", "Value": "ml"}, {"Key": "slipway:job-id", "Value": "old"}],
		"CheckpointConfig": {"S3Uri": "s3://bucket/ckpt/${queue}/${job_id}"}}`)
	req, err := BuildRequest(smQueue(body), testTask(2, spec))
	if err != nil {
		t.Fatalf("BuildRequest: %v", err)
	}
	in := req.Input
	if got, want := aws.ToString(in.TrainingJobName), "j0123456789abcdef-a2"; got != want {
		t.Errorf("TrainingJobName: got %q, want %q", got, want)
	}
	alg := in.AlgorithmSpecification
	if got := aws.ToString(alg.TrainingImage); got != spec.Image {
		t.Errorf("TrainingImage: got %q, want %q", got, spec.Image)
	}
	if got := string(alg.TrainingInputMode); got != "File" {
		t.Errorf("TrainingInputMode: got %q, want File", got)
	}
	if !reflect.DeepEqual(alg.ContainerEntrypoint, spec.Entrypoint) || !reflect.DeepEqual(alg.ContainerArguments, spec.Args) {
		t.Errorf("entrypoint, args: got %q %q, want %q %q", alg.ContainerEntrypoint, alg.ContainerArguments, spec.Entrypoint, spec.Args)
	}
	wantHP := map[string]string{"seed": "7", "lr": "0.01", "epochs": "3", "fast": "true", "name": "a b",
		"layers": "[64,32]", "opt": `{"beta":0.9}`, "none": "null"}
	if !reflect.DeepEqual(in.HyperParameters, wantHP) {
		t.Errorf("HyperParameters: got %v, want %v", in.HyperParameters, wantHP)
	}
	wantEnv := map[string]string{"WANDB_MODE": "offline", runner.EnvJobID: "j0123456789abcdef", runner.EnvQueue: "sm-queue",
		runner.EnvAttempt: "2", runner.EnvRunConfig: `{"lr":0.01,"epochs":3,"fast":true,"name":"a b","layers":[64,32],"opt":{"beta":0.9},"none":null}`}
	if !reflect.DeepEqual(in.Environment, wantEnv) {
		t.Errorf("Environment: got %v, want %v", in.Environment, wantEnv)
	}
	gotTags := map[string]string{}
	for _, tag := range in.Tags {
		gotTags[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
	}
	wantTags := map[string]string{"team": "ml", TagJobID: "j0123456789abcdef", TagQueue: "sm-queue", TagAttempt: "2"}
	if !reflect.DeepEqual(gotTags, wantTags) || len(in.Tags) != len(wantTags) {
		t.Errorf("Tags: got %v, want %v", in.Tags, wantTags)
	}
	if got, want := aws.ToString(in.CheckpointConfig.S3Uri), "s3://bucket/ckpt/sm-queue/j0123456789abcdef"; got != want {
		t.Errorf("CheckpointConfig.S3Uri: got %q, want %q (the same for every attempt)", got, want)
	}
	if req.EcrRepoName != "my-repo" {
		t.Errorf("EcrRepoName: got %q, want my-repo", req.EcrRepoName)
	}
	var sent map[string]any
	if err := json.Unmarshal(req.JSON, &sent); err != nil {
		t.Fatalf("request JSON: %v", err)
	}
	if _, ok := sent["EcrRepoName"]; ok {
		t.Errorf("request JSON: got EcrRepoName, want it removed")
	}
	if sent["TrainingJobName"] != "j0123456789abcdef-a2" {
		t.Errorf("request JSON TrainingJobName: got %v, want the input's", sent["TrainingJobName"])
	}
	if len(req.Checks) == 0 {
		t.Errorf("Checks: got none, want the checks passed")
	}
}

func TestBuildRequestTrainingJobName(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 62)
	tests := []struct {
		name, given string
		attempt     int
		want        string
	}{
		{"task name", "", 1, "j0123456789abcdef-a1"},
		{"given name gets the attempt", "my-run", 3, "my-run-a3"},
		{"macros", "run-${queue}-${job_id}", 1, "run-sm-queue-j0123456789abcdef-a1"},
		{"too long is cut", long, 12, strings.Repeat("x", 63-4) + "-a12"},
		{"invalid characters become hyphens", "run_${queue}.x", 1, "run-sm-queue-x-a1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			body := readyBody
			if tc.given != "" {
				body = withMembers(t, fmt.Sprintf(`{"TrainingJobName": %q}`, tc.given))
			}
			req, err := BuildRequest(smQueue(body), testTask(tc.attempt, job.Spec{Image: "img:1"}))
			if err != nil {
				t.Fatalf("BuildRequest: %v", err)
			}
			got := aws.ToString(req.Input.TrainingJobName)
			if got != tc.want {
				t.Errorf("TrainingJobName: got %q, want %q", got, tc.want)
			}
			if len(got) > 63 || !validName.MatchString(got) {
				t.Errorf("TrainingJobName %q: not valid for SageMaker", got)
			}
		})
	}
}

func TestBuildRequestRefuses(t *testing.T) {
	t.Parallel()
	manyEnv := map[string]string{}
	for i := range 98 {
		manyEnv[fmt.Sprintf("V%d", i)] = "x"
	}
	var manyTags []string
	for i := range 48 {
		manyTags = append(manyTags, fmt.Sprintf(`{"Key": "k%d", "Value": "v"}`, i))
	}
	tests := []struct {
		name  string
		body  string
		spec  job.Spec
		wants []string // substrings of the error
	}{
		{"not ready", config.DefaultSageMakerQueue, job.Spec{Image: "i"}, []string{"RoleArn", "OutputDataConfig.S3OutputPath", "not ready"}},
		{"unknown member", withMembers(t, `{"ResourceConfg": {}}`), job.Spec{Image: "i"}, []string{"ResourceConfg", "unknown member"}},
		{"unknown macro", withMembers(t, `{"CheckpointConfig": {"S3Uri": "s3://b/${HOME}"}}`), job.Spec{Image: "i"}, []string{"CheckpointConfig.S3Uri", "${HOME}"}},
		{"malformed macro", withMembers(t, `{"CheckpointConfig": {"S3Uri": "s3://b/${job_id"}}`), job.Spec{Image: "i"}, []string{"CheckpointConfig.S3Uri", "malformed"}},
		{"self-referring name", withMembers(t, `{"TrainingJobName": "x-${training_job_name}"}`), job.Spec{Image: "i"}, []string{"TrainingJobName", "training_job_name"}},
		{"image macro without image", withMembers(t, `{"Environment": {"IMG": "${image_uri}"}}`), job.Spec{Entrypoint: []string{"x"}}, []string{"Environment.IMG", "${image_uri}"}},
		{"no image", readyBody, job.Spec{Entrypoint: []string{"x"}}, []string{"AlgorithmSpecification.TrainingImage"}},
		{"too many env vars", readyBody, job.Spec{Image: "i", Env: manyEnv}, []string{"Environment", "101", "100"}},
		{"env value too long", readyBody, job.Spec{Image: "i", Env: map[string]string{"BIG": strings.Repeat("y", 513)}}, []string{"Environment.BIG", "512"}},
		{"bad env name", readyBody, job.Spec{Image: "i", Env: map[string]string{"1BAD": "x"}}, []string{"Environment.1BAD"}},
		{"too many tags", withMembers(t, `{"Tags": [`+strings.Join(manyTags, ",")+`]}`), job.Spec{Image: "i"}, []string{"Tags", "51", "50"}},
		{"long argument", readyBody, job.Spec{Image: "i", Args: []string{strings.Repeat("a", 300)}}, []string{"AlgorithmSpecification.ContainerArguments[0]"}},
		{"template variable left", withMembers(t, `{"ResourceConfig": {"InstanceType": "{{itype}}", "InstanceCount": 1, "VolumeSizeInGB": 2}}`), job.Spec{Image: "i"}, []string{"ResourceConfig.InstanceType", "{{itype}}"}},
		{"run config not an object", readyBody, job.Spec{Image: "i", RunConfig: json.RawMessage(`[1]`)}, []string{"run config"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req, err := BuildRequest(smQueue(tc.body), testTask(1, tc.spec))
			if err == nil {
				t.Fatalf("BuildRequest: got %s, want an error", req.JSON)
			}
			if !errors.Is(err, job.ErrInvalid) {
				t.Errorf("error %q: got it not wrapping job.ErrInvalid, want it to", err)
			}
			for _, want := range tc.wants {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error: got %q, want it to mention %q", err, want)
				}
			}
		})
	}
}

func TestBuildRequestLongRunConfig(t *testing.T) {
	t.Parallel()
	rc := fmt.Sprintf(`{"notes": %q}`, strings.Repeat("n", 600))
	req, err := BuildRequest(smQueue(readyBody), testTask(1, job.Spec{Image: "i", RunConfig: json.RawMessage(rc)}))
	if err != nil {
		t.Fatalf("BuildRequest: %v", err)
	}
	if _, ok := req.Input.Environment[runner.EnvRunConfig]; ok {
		t.Errorf("Environment: got %s, want it left out (over 512 characters)", runner.EnvRunConfig)
	}
	if got := req.Input.HyperParameters["notes"]; len(got) != 600 {
		t.Errorf("HyperParameters.notes: got %d characters, want 600", len(got))
	}
	if len(req.Notes) != 1 || !strings.Contains(req.Notes[0], runner.EnvRunConfig) {
		t.Errorf("Notes: got %q, want one about %s", req.Notes, runner.EnvRunConfig)
	}
}

func TestBuildRequestOverrides(t *testing.T) {
	t.Parallel()
	over := `{"ResourceConfig": {"InstanceType": "ml.g5.xlarge"}, "StoppingCondition": {"MaxWaitTimeInSeconds": null}, "Tags": [{"Key": "k", "Value": "v"}]}`
	req, err := buildRequest(smQueue(readyBody), testTask(1, job.Spec{Image: "i"}), json.RawMessage(over))
	if err != nil {
		t.Fatalf("buildRequest: %v", err)
	}
	rc := req.Input.ResourceConfig
	if got := string(rc.InstanceType); got != "ml.g5.xlarge" {
		t.Errorf("InstanceType: got %q, want the override ml.g5.xlarge", got)
	}
	if got := aws.ToInt32(rc.VolumeSizeInGB); got != 2 {
		t.Errorf("VolumeSizeInGB: got %d, want the queue's 2 kept", got)
	}
	if sc := req.Input.StoppingCondition; sc == nil || sc.MaxWaitTimeInSeconds != nil || aws.ToInt32(sc.MaxRuntimeInSeconds) != 3600 {
		t.Errorf("StoppingCondition: got %+v, want MaxRuntimeInSeconds kept and MaxWaitTimeInSeconds removed by null", sc)
	}
	if got := len(req.Input.Tags); got != 4 {
		t.Errorf("Tags: got %d, want the override's 1 and Slipway's 3", got)
	}
}

func TestBuildRequestFillsTemplateVariables(t *testing.T) {
	t.Parallel()
	q := smQueue(withMembers(t, `{"ResourceConfig": {"InstanceType": "{{type}}", "InstanceCount": "{{n}}", "VolumeSizeInGB": 2}}`))
	q.Vars = []string{"type:string:enum=ml.m5.large,ml.g5.xlarge=ml.m5.large", "n:int:1:4"}

	spec := job.Spec{Image: "i", Vars: map[string]string{"n": "2"}, ResourceArgs: json.RawMessage(`{"StoppingCondition": {"MaxRuntimeInSeconds": 60}}`)}
	req, err := BuildRequest(q, testTask(1, spec))
	if err != nil {
		t.Fatalf("BuildRequest: %v", err)
	}
	rc := req.Input.ResourceConfig
	if string(rc.InstanceType) != "ml.m5.large" || aws.ToInt32(rc.InstanceCount) != 2 {
		t.Errorf("ResourceConfig: got %s x %d, want the default ml.m5.large x the given 2", rc.InstanceType, aws.ToInt32(rc.InstanceCount))
	}
	if got := aws.ToInt32(req.Input.StoppingCondition.MaxRuntimeInSeconds); got != 60 {
		t.Errorf("MaxRuntimeInSeconds: got %d, want the resource args' 60", got)
	}

	for _, tc := range []struct {
		vars    map[string]string
		mention string
	}{
		{map[string]string{"n": "9"}, "n"},
		{map[string]string{"n": "1", "type": "ml.p5.48xlarge"}, "type"},
		{map[string]string{}, "n"},
		{map[string]string{"n": "1", "colour": "red"}, "colour"},
	} {
		_, err := BuildRequest(q, testTask(1, job.Spec{Image: "i", Vars: tc.vars}))
		if !errors.Is(err, job.ErrInvalid) || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("vars %v: got %v, want ErrInvalid naming %q", tc.vars, err, tc.mention)
		}
	}
}

// FuzzBuildRequest checks that the builder never panics and that every
// request it produces passes the config validator, or that it refuses with
// job.ErrInvalid.
func FuzzBuildRequest(f *testing.F) {
	f.Add([]byte(readyBody), "img:1", "KEY", "value", []byte(`{"lr": 0.1}`), "run-${job_id}")
	f.Add([]byte(config.DefaultSageMakerQueue), "", "", "", []byte(nil), "")
	f.Add([]byte(`{"RoleArn": "arn:aws:iam::123456789012:role/r", "OutputDataConfig": {"S3OutputPath": "s3://b/${queue}"}, "Tags": [null]}`),
		"i", "A", "${HOME}", []byte(`{"a": {"b": [1, "x", null]}}`), "${nope}")
	f.Add([]byte(`{"RoleArn": "arn:aws:iam::123456789012:role/r", "OutputDataConfig": {"S3OutputPath": "s3://b"}, "HyperParameters": {"x": "${attempt}"}}`),
		"", "=", "\x00", []byte(`{"x": 1e400}`), "---")
	f.Fuzz(func(t *testing.T, body []byte, image, envKey, envValue string, runConfig []byte, name string) {
		if name != "" {
			var obj map[string]any
			if json.Unmarshal(body, &obj) == nil && obj != nil {
				obj["TrainingJobName"] = name
				body, _ = json.Marshal(obj)
			}
		}
		spec := job.Spec{Image: image, Entrypoint: []string{"sh"}, RunConfig: runConfig}
		if envKey != "" {
			spec.Env = map[string]string{envKey: envValue}
		}
		req, err := BuildRequest(smQueue(string(body)), testTask(1, spec))
		if err != nil {
			if !errors.Is(err, job.ErrInvalid) {
				t.Fatalf("error %q: want it to wrap job.ErrInvalid", err)
			}
			return
		}
		q, errs := config.ValidateSageMakerQueue(req.JSON)
		if len(errs) > 0 || q == nil || len(q.Missing()) > 0 || len(q.Placeholders()) > 0 {
			t.Fatalf("produced request %s fails validation: %v (missing %v)", req.JSON, errs, q.Missing())
		}
		n := aws.ToString(req.Input.TrainingJobName)
		if len(n) > 63 || !validName.MatchString(n) {
			t.Fatalf("TrainingJobName %q: not valid", n)
		}
		if req.Input.Environment[runner.EnvJobID] != "j0123456789abcdef" {
			t.Fatalf("Environment: got %v, want %s set", req.Input.Environment, runner.EnvJobID)
		}
	})
}

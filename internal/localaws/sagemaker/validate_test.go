package sagemaker

import (
	"encoding/json"
	"strings"
	"testing"
)

func validRequest() CreateRequest {
	return CreateRequest{
		TrainingJobName:        "job-1",
		RoleArn:                "arn:aws:iam::123456789012:role/SageMaker",
		AlgorithmSpecification: &AlgorithmSpecification{TrainingImage: "img:1", TrainingInputMode: "File"},
		OutputDataConfig:       &OutputDataConfig{S3OutputPath: "s3://b/out"},
		ResourceConfig:         &ResourceConfig{InstanceType: "ml.m5.large", InstanceCount: 1, VolumeSizeInGB: 1},
		StoppingCondition:      &StoppingCondition{MaxRuntimeInSeconds: 60},
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 2501)
	cases := []struct {
		name string
		edit func(*CreateRequest)
		want string // a part of the message; "" means valid
	}{
		{"valid", func(*CreateRequest) {}, ""},
		{"name pattern", func(r *CreateRequest) { r.TrainingJobName = "-bad" }, "trainingJobName"},
		{"name too long", func(r *CreateRequest) { r.TrainingJobName = strings.Repeat("a", 64) }, "trainingJobName"},
		{"name 63", func(r *CreateRequest) { r.TrainingJobName = strings.Repeat("a", 63) }, ""},
		{"no role", func(r *CreateRequest) { r.RoleArn = "" }, "'roleArn' failed to satisfy constraint: Member must not be null"},
		{"input mode enum", func(r *CreateRequest) { r.AlgorithmSpecification.TrainingInputMode = "Stream" }, "enum value set"},
		{"pipe", func(r *CreateRequest) { r.AlgorithmSpecification.TrainingInputMode = "Pipe" }, "Pipe mode"},
		{"hyperparameter value", func(r *CreateRequest) { r.HyperParameters = map[string]string{"k": long} }, "hyperParameters.k.value"},
		{"env key", func(r *CreateRequest) { r.Environment = map[string]string{"A-B": "x"} }, "environment.key"},
		{"tags", func(r *CreateRequest) { r.Tags = make([]Tag, 51) }, "tags"},
		{"spot without wait", func(r *CreateRequest) { r.EnableManagedSpotTraining = true }, "maxWaitTimeInSeconds"},
		{"wait below runtime", func(r *CreateRequest) {
			r.EnableManagedSpotTraining = true
			r.StoppingCondition.MaxWaitTimeInSeconds = 30
		}, "greater than or equal to MaxRuntimeInSeconds"},
		{"spot ok", func(r *CreateRequest) {
			r.EnableManagedSpotTraining = true
			r.StoppingCondition.MaxWaitTimeInSeconds = 60
		}, ""},
		{"instances", func(r *CreateRequest) { r.ResourceConfig.InstanceCount = 5 }, "at most 4 instances"},
		{"channel dup", func(r *CreateRequest) {
			ch := Channel{ChannelName: "train", DataSource: &DataSource{S3DataSource: &S3DataSource{S3DataType: "S3Prefix", S3URI: "s3://b/p"}}}
			r.InputDataConfig = []Channel{ch, ch}
		}, "unique"},
		{"two errors", func(r *CreateRequest) { r.RoleArn, r.OutputDataConfig = "", nil }, "2 validation errors detected"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := validRequest()
			tc.edit(&r)
			err := Validate(&r, Limits{MaxInstanceCount: 4})
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("got %v, want valid", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// FuzzValidate feeds arbitrary CreateTrainingJob bodies through decoding and
// validation: neither may panic, and an accepted request must carry the
// members a run needs.
func FuzzValidate(f *testing.F) {
	seed, _ := json.Marshal(validRequest())
	f.Add(seed)
	f.Add([]byte(`{"TrainingJobName":"a","StoppingCondition":{"MaxRuntimeInSeconds":-1}}`))
	f.Add([]byte(`{"InputDataConfig":[{"ChannelName":"x","DataSource":{}}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var r CreateRequest
		if json.Unmarshal(body, &r) != nil {
			return
		}
		if Validate(&r, Limits{MaxInstanceCount: 4}) != nil {
			return
		}
		if r.AlgorithmSpecification == nil || r.ResourceConfig == nil || r.OutputDataConfig == nil || r.StoppingCondition == nil {
			t.Fatalf("accepted a request without the members a run needs: %s", body)
		}
		if _, _, err := parseS3(r.OutputDataConfig.S3OutputPath); err != nil {
			t.Fatalf("accepted an output path that cannot be parsed: %v", err)
		}
		for _, c := range r.InputDataConfig {
			if _, _, err := parseS3(c.DataSource.S3DataSource.S3URI); err != nil {
				t.Fatalf("accepted a channel URI that cannot be parsed: %v", err)
			}
		}
	})
}

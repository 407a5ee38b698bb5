package sagemaker

import (
	"errors"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/runner"
)

func TestBuildRequestPassesSecretReferencesOnly(t *testing.T) {
	t.Parallel()
	const arn = "arn:aws:secretsmanager:us-east-2:123456789012:secret:wandb-AbCdEf"
	spec := job.Spec{Image: "img:1", Secrets: []job.Secret{
		{Name: "WANDB_API_KEY", Ref: job.SecretsManagerRef + arn},
		{Name: "DB_PASSWORD", Ref: "ssm:/prod/db/password"},
	}}
	req, err := BuildRequest(smQueue(readyBody), testTask(1, spec))
	if err != nil {
		t.Fatal(err)
	}
	env := req.Input.Environment
	for name, want := range map[string]string{
		"SLIPWAY_SECRET_WANDB_API_KEY_REF": "secretsmanager:" + arn,
		"SLIPWAY_SECRET_DB_PASSWORD_REF":   "ssm:/prod/db/password",
	} {
		if got := env[name]; got != want {
			t.Errorf("Environment[%s]: got %q, want %q", name, got, want)
		}
	}
	for _, name := range []string{"WANDB_API_KEY", "DB_PASSWORD"} {
		if v, ok := env[name]; ok {
			t.Errorf("Environment[%s] = %q: want no variable named after the secret itself", name, v)
		}
	}
}

func TestBuildRequestRefusesSecretValues(t *testing.T) {
	t.Parallel()
	const value = "hunter2-very-secret"
	cases := map[string]runner.Task{
		"sealed in the spec": testTask(1, job.Spec{Image: "img:1", Secrets: []job.Secret{{Name: "API_TOKEN", Ref: job.SealedRef + "c2VhbGVk"}}}),
		"value in the task": func() runner.Task {
			tk := testTask(1, job.Spec{Image: "img:1"})
			tk.Secrets = map[string]string{"API_TOKEN": value}
			return tk
		}(),
	}
	for name, tk := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			req, err := BuildRequest(smQueue(readyBody), tk)
			if !errors.Is(err, job.ErrInvalid) {
				t.Fatalf("got request %v, err %v; want job.ErrInvalid", req, err)
			}
			msg := err.Error()
			for _, want := range []string{"API_TOKEN", "reference"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q: want it to name %q", msg, want)
				}
			}
			if strings.Contains(msg, value) {
				t.Errorf("error %q holds the secret's value", msg)
			}
		})
	}
}

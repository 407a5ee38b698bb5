package admission_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/admission"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/runner"
	"github.com/slipway-ml/slipway/internal/runner/sagemaker"
)

// TestMacrosNeverReadTheEnvironment checks that a queue config cannot
// reach the agent's environment through ${...}: a name outside the
// allow-list is refused, and nothing of the environment reaches the
// request. It sets an environment variable, so it is not parallel.
func TestMacrosNeverReadTheEnvironment(t *testing.T) {
	const secret = "s3cr3t-agent-env-value"
	t.Setenv("SLIPWAY_TEST_AGENT_SECRET", secret)
	var c admission.Checker
	for _, ref := range []string{"${SLIPWAY_TEST_AGENT_SECRET}", "${env:SLIPWAY_TEST_AGENT_SECRET}", "${HOME}", "$SLIPWAY_TEST_AGENT_SECRET"} {
		body := strings.Replace(designBody, `"EcrRepoName": ""`, `"EcrRepoName": "", "Environment": {"LEAK": "`+ref+`"}`, 1)
		q, err := c.CheckQueue(smQueue(body))
		if err != nil {
			if !errors.Is(err, job.ErrInvalid) {
				t.Errorf("queue config with %s: got %v, want ErrInvalid or accepted", ref, err)
			}
			continue
		}
		j := imageJob()
		j.Spec.Env = map[string]string{"FROM_JOB": ref}
		req, err := sagemaker.BuildRequest(q, runner.Task{Job: &j, Name: runner.TaskName(j)})
		if err != nil {
			continue // refused: nothing leaks
		}
		b, _ := json.Marshal(req.Input)
		if strings.Contains(string(b)+string(req.JSON), secret) {
			t.Errorf("queue config with %s: the request holds the agent's environment: %s", ref, req.JSON)
		}
	}
}

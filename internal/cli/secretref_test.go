package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/slipway-ml/slipway/internal/config"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/localaws/localawstest"
)

// TestSecretReferenceOnALocalProcessQueue runs what a user of `slipway up`
// with the local AWS endpoint does: a secret in Secrets Manager, a job on a
// local-process queue that names it with --secret NAME=secretsmanager:...,
// which the agent resolves into the job's secrets folder. Not parallel: it
// points the agent's AWS chain at the endpoint through the environment.
func TestSecretReferenceOnALocalProcessQueue(t *testing.T) {
	endpoint := localawstest.Services(t, "")
	for k, v := range map[string]string{"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
		"AWS_REGION": "us-east-1", "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_PROFILE": ""} {
		t.Setenv(k, v)
	}
	const value = "ref-resolved-by-the-agent-7f3c"
	if _, err := secretsmanager.NewFromConfig(awsConfig(endpoint)).CreateSecret(context.Background(),
		&secretsmanager.CreateSecretInput{Name: aws.String("team/api-token"), SecretString: aws.String(value)}); err != nil {
		t.Fatalf("CreateSecret: %v", err)
	}
	url := setupWith(t, &config.Agent{MaxJobs: 1})
	if code, _, stderr := run(t, url, "queue", "create", "cpu", "--resource", "local-process"); code != 0 {
		t.Fatalf("queue create: exit %d: %s", code, stderr)
	}
	script := `f="$SLIPWAY_SECRETS_DIR/TOKEN"; echo "token $(cat "$f")"; echo "sum $(sha256sum < "$f" | cut -d' ' -f1)"; echo "stderr $(cat "$f")" >&2`
	code, stdout, stderr := run(t, url, "launch", "-q", "cpu", "--entrypoint", "sh -c", "--secret", "TOKEN=secretsmanager:team/api-token", "--follow", "--", script)
	if code != 0 {
		t.Fatalf("launch: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	id := strings.SplitN(stdout, "\n", 2)[0]
	j := waitJob(t, clientFor(t, url), id, "ended", func(j job.Job) bool { return j.State.Terminal() })
	if j.State != job.Finished {
		t.Fatalf("state: got %s (%s), want finished", j.State, j.Reason)
	}
	sum := sha256.Sum256([]byte(value))
	_, logs, _ := run(t, url, "job", "logs", id)
	for _, want := range []string{"sum " + hex.EncodeToString(sum[:]), "token [redacted]", "stderr [redacted]"} {
		if !strings.Contains(logs, want) {
			t.Errorf("job logs %q: want %q", logs, want)
		}
	}
	_, describe, _ := run(t, url, "job", "describe", id, "-o", "json")
	for what, text := range map[string]string{"launch output": stdout + stderr, "job logs": logs, "job describe (events, reason)": describe} {
		if strings.Contains(text, value) {
			t.Errorf("%s hold the secret's value: %s", what, text)
		}
	}

	// A reference to a secret that is not there fails the job, naming it.
	code, stdout, _ = run(t, url, "launch", "-q", "cpu", "--entrypoint", "true", "--secret", "MISSING_TOKEN=secretsmanager:team/nope")
	if code != 0 {
		t.Fatalf("launch with a missing secret: exit %d", code)
	}
	j = waitJob(t, clientFor(t, url), strings.TrimSpace(stdout), "ended", func(j job.Job) bool { return j.State.Terminal() })
	t.Logf("missing secret: %s", j.Reason)
	if j.State != job.Failed || !strings.Contains(j.Reason, "MISSING_TOKEN") || !strings.Contains(j.Reason, "secretsmanager:team/nope") || !strings.Contains(j.Reason, "does not exist") {
		t.Errorf("missing secret: got %s (%s), want failed naming MISSING_TOKEN, its reference and that it does not exist", j.State, j.Reason)
	}
}

package container_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/localaws/localawstest"
	slipcontainer "github.com/slipway-ml/slipway/internal/runner/container"
	"github.com/slipway-ml/slipway/internal/runner/runnertest"
	"github.com/slipway-ml/slipway/internal/secretref"
)

func TestSecretsMountedReadOnly(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := f.newRunner(t)
	spec := f.shell(`echo "dir $SLIPWAY_SECRETS_DIR"; cat "$SLIPWAY_SECRETS_DIR/API_TOKEN"; echo; echo x > "$SLIPWAY_SECRETS_DIR/API_TOKEN" 2>/dev/null || echo read-only`)
	spec.Secrets = []job.Secret{{Name: "API_TOKEN", Ref: job.SealedRef + "c2VhbGVk"}}
	task := runnertest.NewTask(spec)
	task.Secrets = map[string]string{"API_TOKEN": "container-secret-value"}
	id, info := f.startAndInspect(ctx, t, r, task, "container-secret-value")
	var host string
	for _, m := range info.Mounts {
		if m.Destination == slipcontainer.SecretsDir {
			host = m.Source
			if m.RW {
				t.Errorf("secrets mount %s is read-write, want read-only", m.Destination)
			}
		}
	}
	if host == "" {
		t.Fatalf("mounts %+v: want one at %s", info.Mounts, slipcontainer.SecretsDir)
	}
	sink := &runnertest.Sink{}
	res, err := r.Wait(ctx, task, id, sink)
	if err != nil || res.State != job.Finished {
		t.Fatalf("Wait: got %+v, %v, want finished", res, err)
	}
	got := sink.Lines("stdout")
	want := []string{"dir " + slipcontainer.SecretsDir, "container-secret-value", "read-only"}
	if !slices.Equal(got, want) {
		t.Errorf("stdout: got %q, want %q", got, want)
	}
	if _, err := os.Stat(host); !os.IsNotExist(err) {
		t.Errorf("secrets folder %s after the run: got %v, want it gone", host, err)
	}
}

func TestReferencesAreResolvedIntoTheMountAndRedactedAfterAReattach(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const token, db = "container-token-from-secrets-manager", "container-password-from-ssm"
	cfg := localawstest.WithSecrets(t, map[string]string{"train/token": token}, map[string]string{"/train/db": db})
	work := t.TempDir()
	r := f.newRunnerWith(t, slipcontainer.Config{WorkDir: work, Secrets: secretref.NewFromConfig(cfg)})
	spec := f.shell(`d="$SLIPWAY_SECRETS_DIR"
echo "sum $(cat "$d/TOKEN" "$d/DB" | sha256sum | cut -d' ' -f1)"
echo "leak $(cat "$d/TOKEN") $(cat "$d/DB")"
echo "failing with $(cat "$d/DB")" >&2; exit 4`)
	spec.Secrets = []job.Secret{{Name: "TOKEN", Ref: "secretsmanager:train/token"}, {Name: "DB", Ref: "ssm:/train/db"}}
	task := runnertest.NewTask(spec)
	id, _ := f.startAndInspect(ctx, t, r, task, token, db)
	// A runner that did not start it (a restarted agent) waits on it: it
	// knows the values only from the secrets folder.
	other := f.newRunnerWith(t, slipcontainer.Config{WorkDir: work})
	sink := &runnertest.Sink{}
	res, err := other.Wait(ctx, task, id, sink)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if want := "exit code 4: failing with [redacted]"; res.State != job.Failed || res.Reason != want {
		t.Errorf("result: got %s %q, want failed %q", res.State, res.Reason, want)
	}
	h := sha256.Sum256([]byte(token + db))
	want := []string{"sum " + hex.EncodeToString(h[:]), "leak [redacted] [redacted]"}
	if got := sink.Lines("stdout"); !slices.Equal(got, want) {
		t.Errorf("stdout: got %q, want %q", got, want)
	}
	if got, want := sink.Lines("stderr"), []string{"failing with [redacted]"}; !slices.Equal(got, want) {
		t.Errorf("stderr: got %q, want %q", got, want)
	}
}

func TestAMissingReferenceCreatesNoContainer(t *testing.T) {
	t.Parallel()
	f := setup(t)
	cfg := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(localawstest.Services(t, "")),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDLOCAL", "secret", "")}
	r := f.newRunnerWith(t, slipcontainer.Config{WorkDir: t.TempDir(), Secrets: secretref.NewFromConfig(cfg)})
	spec := f.shell("echo never")
	spec.Secrets = []job.Secret{{Name: "GONE", Ref: "secretsmanager:not/there"}}
	task := runnertest.NewTask(spec)
	_, err := r.Start(context.Background(), task)
	if !errors.Is(err, job.ErrNotFound) || !strings.Contains(err.Error(), "GONE") {
		t.Fatalf("Start: got %v, want job.ErrNotFound naming GONE", err)
	}
	if _, err := f.cli.ContainerInspect(context.Background(), slipcontainer.Name(task)); err == nil {
		t.Errorf("container %s exists after a failed start", slipcontainer.Name(task))
	}
}

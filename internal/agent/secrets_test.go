package agent_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/agent"
	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/build"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/runner"
	"github.com/slipway-ml/slipway/internal/server"
)

func TestLocalProcessReadsItsSecretFromAFileAndNeverShowsIt(t *testing.T) {
	t.Parallel()
	e := setup(t, server.Config{SecretsKey: bytes.Repeat([]byte{7}, 32)})
	e.queue("q", job.LocalProcess)
	e.startAgent([]string{"q"}, 1, newProcess(t))
	const value = "s3cr3t-value-for-the-test"
	spec := sh(`f="$SLIPWAY_SECRETS_DIR/API_TOKEN"
stat -c 'mode %a' "$SLIPWAY_SECRETS_DIR" "$f"
echo "hash $(sha256sum < "$f" | cut -d' ' -f1)"
echo "leak $(cat "$f")"
env | grep -c "$(cat "$f")" || true
echo "dir $SLIPWAY_SECRETS_DIR" >&2
cat "$f" >&2; exit 3`)
	enq, err := e.c.Enqueue(e.ctx, api.Enqueue{Queue: "q", Spec: spec, Secrets: map[string]string{"API_TOKEN": value}})
	if err != nil {
		t.Fatal(err)
	}
	j := e.waitEnd(enq.ID)
	if j.State != job.Failed || !strings.Contains(j.Reason, "exit code 3") {
		t.Fatalf("state: got %s (%s), want failed with exit code 3", j.State, j.Reason)
	}
	sum := sha256.Sum256([]byte(value))
	logs := strings.Join(e.logs(j.ID), "\n")
	for _, want := range []string{"stdout: mode 700", "stdout: mode 600", "stdout: hash " + hex.EncodeToString(sum[:]), "stdout: leak [redacted]", "stdout: 0"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs %q lack %q", logs, want)
		}
	}
	all, _ := json.Marshal(j) // the job with its spec, events, reason and outputs
	for what, text := range map[string]string{"logs": logs, "job and events": string(all)} {
		if strings.Contains(text, value) {
			t.Errorf("%s hold the secret's value: %s", what, text)
		}
	}
	// The folder goes with the run.
	for _, line := range e.logs(j.ID) {
		if dir, ok := strings.CutPrefix(line, "stderr: dir "); ok {
			if _, err := os.Stat(dir); err == nil {
				t.Errorf("secrets folder %s still there after the run", dir)
			}
			return
		}
	}
	t.Errorf("logs %q lack the secrets folder's path", logs)
}

func TestLocalProcessRefusesASecretReference(t *testing.T) {
	t.Parallel()
	e := setup(t, server.Config{})
	e.queue("q", job.LocalProcess)
	e.startAgent([]string{"q"}, 1, newProcess(t))
	spec := sh("echo never")
	spec.Secrets = []job.Secret{{Name: "DB_PASSWORD", Ref: "ssm:/prod/db/password"}}
	j := e.waitEnd(e.launch("q", spec, job.Medium).ID)
	if j.State != job.Failed || !strings.Contains(j.Reason, "DB_PASSWORD") || !strings.Contains(j.Reason, "SageMaker") {
		t.Fatalf("state: got %s (%s), want failed naming DB_PASSWORD and saying references are for SageMaker", j.State, j.Reason)
	}
}

func TestPolicyViolationFoundAfterTheBuildFailsTheJob(t *testing.T) {
	t.Parallel()
	e := setup(t, server.Config{})
	if _, err := e.c.CreateQueue(e.ctx, api.CreateQueue{Name: "q", Resource: job.LocalContainer,
		Policy: &job.Policy{Images: []string{"registry.example/allowed"}}}); err != nil {
		t.Fatal(err)
	}
	const built = "registry.example/elsewhere/train:abc"
	ag, err := agent.New(agent.Config{
		Client: e.c, Queues: []string{"q"}, MaxJobs: 1, Logger: quiet, ClaimWait: 2 * time.Second,
		Runner: func(job.Queue) (runner.Runner, error) { return newProcess(t), nil },
		Build: func(ctx context.Context, q job.Queue, j job.Job, code []byte, log func(string)) (build.Result, error) {
			return build.Result{Image: built, Builder: "test"}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() { _ = ag.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	enq, err := e.c.Enqueue(e.ctx, api.Enqueue{Queue: "q", Spec: job.Spec{Entrypoint: []string{"python", "train.py"}}, Code: codeTarball(t)})
	if err != nil {
		t.Fatalf("enqueue: %v (the policy cannot judge an image not built yet)", err)
	}
	j := e.waitEnd(enq.ID)
	if j.State != job.Failed {
		t.Fatalf("state: got %s (%s), want failed", j.State, j.Reason)
	}
	for _, want := range []string{"policy", "images", built} {
		if !strings.Contains(j.Reason, want) {
			t.Errorf("reason %q: want it to name %q", j.Reason, want)
		}
	}
	if j.ExternalID != "" {
		t.Errorf("external id: got %q, want none: the run must not start", j.ExternalID)
	}
}

// codeTarball is a gzipped tarball holding one small file.
func codeTarball(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	body := []byte("print('hi')\n")
	if err := tw.WriteHeader(&tar.Header{Name: "train.py", Mode: 0o644, Size: int64(len(body))}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(tw.Close(), gz.Close()); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/config"
	"github.com/slipway-ml/slipway/internal/dockertest"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/source/sourcetest"
)

// setup runs the single-machine stack (server, agent, SQLite) in-process,
// as `slipway up` does, and returns its URL.
func setup(t *testing.T) string {
	t.Helper()
	return setupWith(t, &config.Agent{MaxJobs: 2})
}

// setupWith is setup with an agent config.
func setupWith(t *testing.T, cfg *config.Agent) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	slog.SetDefault(slog.New(slog.DiscardHandler))
	st, err := openStore(ctx, filepath.Join(t.TempDir(), "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := startStack(ctx, "127.0.0.1:0", st, cfg, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = s.wait()
		st.Close()
	})
	return s.url
}

// run runs the slipway command line and returns its exit code and output.
func run(t *testing.T, server string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	if server != "" {
		args = append([]string{"--server", server}, args...)
	}
	code = Execute(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestQueueCommands(t *testing.T) {
	url := setup(t)
	if code, _, stderr := run(t, url, "queue", "create", "cpu", "--resource", "local-process"); code != 0 {
		t.Fatalf("queue create: exit %d: %s", code, stderr)
	}
	code, stdout, _ := run(t, url, "queue", "list", "-o", "json")
	var qs []job.Queue
	if code != 0 || json.Unmarshal([]byte(stdout), &qs) != nil || len(qs) != 1 || qs[0].Name != "cpu" {
		t.Fatalf("queue list -o json: exit %d, %q; want one queue named cpu", code, stdout)
	}
	code, stdout, _ = run(t, url, "queue", "create", "sm", "--resource", "sagemaker")
	if code != 0 || !strings.Contains(stdout, "ready:       no: fill RoleArn and OutputDataConfig.S3OutputPath") {
		t.Fatalf("sagemaker queue without config: exit %d, %q; want it created and not ready, naming the fields", code, stdout)
	}
	body := `{"RoleArn": "arn:aws:iam::123456789012:role/R", "OutputDataConfig": {"S3OutputPath": "s3://b/o"}, "ResourceConfig": {"InstanceTyp": "ml.m5.large"}}`
	code, _, stderr := run(t, url, "queue", "update", "sm", "--config", body)
	if code != 1 || !strings.Contains(stderr, "ResourceConfig.InstanceTyp") {
		t.Fatalf("queue update with a misspelt member: exit %d, %q; want 1 naming ResourceConfig.InstanceTyp", code, stderr)
	}
	if code, _, stderr := run(t, url, "queue", "delete", "cpu"); code != 0 {
		t.Fatalf("queue delete: exit %d: %s", code, stderr)
	}
}

func TestBadInputNamesWhatIsWrong(t *testing.T) {
	url := setup(t)
	run(t, url, "queue", "create", "cpu", "--resource", "local-process")
	tests := []struct {
		args    []string
		code    int
		mention string
	}{
		{[]string{"launch", "-q", "nope", "--entrypoint", "true"}, 1, `queue "nope"`},
		{[]string{"launch", "-q", "cpu", "--entrypoint", "true", "--priority", "urgent"}, 2, "--priority"},
		{[]string{"launch", "-q", "cpu", "--entrypoint", "true", "-c", "{not json"}, 2, "--config"},
		{[]string{"launch", "-q", "cpu", "--entrypoint", "echo 'unterminated"}, 2, "--entrypoint"},
		{[]string{"launch", "-q", "cpu", "--env", "NOEQUALS"}, 2, "--env"},
		{[]string{"launch", "-q", "cpu"}, 2, "--image, --dir, --git or --entrypoint"},
		{[]string{"launch", "-q", "cpu", "--entrypoint", "true", "--git", "ext::sh -c id"}, 2, "--git"},
		{[]string{"launch", "-q", "cpu", "--image", "busybox"}, 1, "entrypoint"},
		{[]string{"queue", "create", "x", "--resource", "mainframe"}, 2, "resource"},
		{[]string{"queue", "create", "x", "--resource", "local-process", "--config", "{oops"}, 2, "--config"},
		{[]string{"job", "list", "--state", "napping"}, 2, "--state"},
		{[]string{"job", "describe", "j-missing"}, 1, "not found"},
		{[]string{"launch", "--bogus"}, 2, "unknown flag"},
	}
	for _, tt := range tests {
		code, _, stderr := run(t, url, tt.args...)
		if code != tt.code || !strings.Contains(stderr, tt.mention) {
			t.Errorf("slipway %s: exit %d, %q; want exit %d mentioning %q", strings.Join(tt.args, " "), code, stderr, tt.code, tt.mention)
		}
	}
}

func TestLaunchFollowExitCodes(t *testing.T) {
	url := setup(t)
	run(t, url, "queue", "create", "cpu", "--resource", "local-process")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "train.sh"), []byte("echo \"lr=$(cat $SLIPWAY_RUN_CONFIG_FILE)\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := run(t, url, "launch", "-q", "cpu", "--dir", dir, "--entrypoint", "sh train.sh", "-c", `{"lr": 0.5}`, "--follow")
	if code != 0 || !strings.Contains(stdout, `lr={"lr":0.5}`) || !strings.Contains(stderr, "finished") {
		t.Fatalf("a job that finishes: exit %d, stdout %q, stderr %q; want 0, its output and the finished state", code, stdout, stderr)
	}
	code, _, stderr = run(t, url, "launch", "-q", "cpu", "--entrypoint", "sh -c 'exit 4'", "--follow")
	if code != exitJobEnded || !strings.Contains(stderr, "exit code 4") {
		t.Fatalf("a job that fails: exit %d, stderr %q; want %d naming exit code 4", code, stderr, exitJobEnded)
	}
	code, stdout, _ = run(t, url, "job", "list", "-q", "cpu", "--state", "failed", "-o", "json")
	var js []job.Job
	if code != 0 || json.Unmarshal([]byte(stdout), &js) != nil || len(js) != 1 {
		t.Fatalf("job list --state failed: exit %d, %q; want one job", code, stdout)
	}
	code, stdout, _ = run(t, url, "job", "list", "-q", "cpu", "--state", "finished", "-o", "json")
	if code != 0 || json.Unmarshal([]byte(stdout), &js) != nil || len(js) != 1 {
		t.Fatalf("job list --state finished: exit %d, %q; want one job", code, stdout)
	}
	code, stdout, _ = run(t, url, "job", "logs", js[0].ID)
	if code != 0 || strings.TrimSpace(stdout) != `lr={"lr":0.5}` {
		t.Fatalf("job logs: exit %d, %q; want the job's one line", code, stdout)
	}
}

func TestLaunchFromGit(t *testing.T) {
	url := setup(t)
	run(t, url, "queue", "create", "cpu", "--resource", "local-process")
	dir, _ := sourcetest.GitRepo(t, "v1", "v2")
	for ref, want := range map[string]string{"@v1": "v1", "": "v2"} {
		code, stdout, stderr := run(t, url, "launch", "-q", "cpu", "--git", "file://"+dir+ref, "--entrypoint", "sh train.sh", "--follow")
		if code != 0 || !strings.HasSuffix(strings.TrimSpace(stdout), want) || !strings.Contains(stderr, "fetched file://") {
			t.Errorf("launch --git file://REPO%s: exit %d, stdout %q, stderr %q; want it to print %s", ref, code, stdout, stderr, want)
		}
	}
}

func TestDryRunPrintsTheRequestAndSendsNothing(t *testing.T) {
	url := setup(t)
	body := `{"RoleArn": "arn:aws:iam::123456789012:role/R", "OutputDataConfig": {"S3OutputPath": "s3://b/o"},
		"ResourceConfig": {"InstanceType": "{{type}}", "InstanceCount": 1, "VolumeSizeInGB": 2},
		"StoppingCondition": {"MaxRuntimeInSeconds": 3600}}`
	if code, _, stderr := run(t, url, "queue", "create", "sm", "--resource", "sagemaker", "--config", body,
		"--var", "type:string:enum=ml.m5.large,ml.g5.xlarge=ml.m5.large"); code != 0 {
		t.Fatalf("queue create: exit %d: %s", code, stderr)
	}
	code, stdout, stderr := run(t, url, "launch", "-q", "sm", "--image", "r/img:1", "--set-var", "type=ml.g5.xlarge", "--dry-run")
	if code != 0 {
		t.Fatalf("dry run: exit %d: %s", code, stderr)
	}
	var req map[string]any
	if err := json.Unmarshal([]byte(stdout), &req); err != nil {
		t.Fatalf("dry run output is not the JSON request: %v\n%s", err, stdout)
	}
	if got := req["ResourceConfig"].(map[string]any)["InstanceType"]; got != "ml.g5.xlarge" {
		t.Errorf("InstanceType: got %v, want the --set-var value ml.g5.xlarge", got)
	}
	if got := req["AlgorithmSpecification"].(map[string]any)["TrainingImage"]; got != "r/img:1" {
		t.Errorf("TrainingImage: got %v, want r/img:1", got)
	}
	if _, stdout, _ := run(t, url, "job", "list", "-o", "json"); strings.TrimSpace(stdout) != "[]" {
		t.Errorf("after a dry run: jobs %s, want none", stdout)
	}
	code, _, stderr = run(t, url, "launch", "-q", "sm", "--image", "r/img:1", "--set-var", "type=ml.p5.48xlarge", "--dry-run")
	if code != 1 || !strings.Contains(stderr, "type") {
		t.Errorf("a value outside the enum: exit %d, %q; want 1 naming type", code, stderr)
	}
}

// TestDemo runs the README's first command end to end: local process,
// local container and, on the embedded local AWS endpoint, SageMaker.
func TestDemo(t *testing.T) {
	dockertest.Client(t) // the demo's container and SageMaker legs need an engine
	code, stdout, stderr := run(t, "", "demo")
	if code != 0 {
		t.Fatalf("demo: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"demo-local (local-process)", "demo-container (local-container)", "demo-sagemaker (sagemaker)",
		"model_artifacts: s3://slipway-demo/output/", "every job finished"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, stdout)
		}
	}
}

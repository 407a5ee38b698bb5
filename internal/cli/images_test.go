package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/build/kaniko"
	"github.com/slipway-ml/slipway/internal/config"
	"github.com/slipway-ml/slipway/internal/dockertest"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/localaws/localawstest"
)

// project writes a job's code with a Dockerfile over the test base image.
// The code is new on every call, so that an image left in the engine by an
// earlier run cannot stand in for the build.
func project(t *testing.T, base, script string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"Dockerfile": "FROM " + base + "\nCOPY train.sh /app/train.sh\nENTRYPOINT [\"sh\", \"/app/train.sh\"]\n",
		"train.sh":   fmt.Sprintf("# %s %d\n%s", t.Name(), time.Now().UnixNano(), script),
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestCodeIsBuiltOnceIntoAnImage launches local code on a local-container
// queue twice: the first job builds its image with Docker, the second finds
// it by its content tag and skips the build.
func TestCodeIsBuiltOnceIntoAnImage(t *testing.T) {
	cli := dockertest.Client(t)
	base := dockertest.BaseImage(t, cli)
	url := setup(t)
	run(t, url, "queue", "create", "ctr", "--resource", "local-container")
	dir := project(t, base, `echo "trained in $(cat /proc/1/cgroup >/dev/null 2>&1 && echo a container)"`+"\n")

	var ids []string
	for range 2 {
		code, stdout, stderr := run(t, url, "launch", "-q", "ctr", "--dir", dir, "--follow")
		if code != 0 || !strings.Contains(stdout, "trained in a container") {
			t.Fatalf("launch --dir: exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
		ids = append(ids, strings.SplitN(stdout, "\n", 2)[0])
	}
	c := clientFor(t, url)
	var reasons []string
	for _, id := range ids {
		j := waitJob(t, c, id, "ended", func(j job.Job) bool { return j.State.Terminal() })
		for _, e := range j.Events {
			if e.To == job.Submitting {
				reasons = append(reasons, e.Reason)
			}
		}
	}
	if len(reasons) != 2 || !strings.HasPrefix(reasons[0], "built ") || !strings.Contains(reasons[1], "build skipped") {
		t.Fatalf("submitting reasons %q: want the first job built and the second skipped", reasons)
	}
}

// TestSageMakerJobFromCode builds local code into an image, pushes it to the
// local endpoint's ECR (the repository named by the queue's EcrRepoName) and
// runs it as a SageMaker training job.
func TestSageMakerJobFromCode(t *testing.T) {
	cli := dockertest.Client(t)
	base := dockertest.BaseImage(t, cli)
	local := localawstest.Start(t)
	for k, v := range map[string]string{"AWS_ENDPOINT_URL": local.URL(), "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1"} {
		t.Setenv(k, v)
	}
	url := setupWith(t, &config.Agent{MaxJobs: 1, Builder: config.Builder{Type: "docker"}})
	body := `{"RoleArn": "arn:aws:iam::000000000000:role/R", "EcrRepoName": "slipway-jobs",
	  "OutputDataConfig": {"S3OutputPath": "s3://built/out"},
	  "ResourceConfig": {"InstanceType": "ml.m4.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 2},
	  "StoppingCondition": {"MaxRuntimeInSeconds": 600}}`
	if code, _, stderr := run(t, url, "queue", "create", "sm", "--resource", "sagemaker", "--config", body); code != 0 {
		t.Fatalf("queue create: exit %d: %s", code, stderr)
	}
	dir := project(t, base, "echo \"training from built code\"\necho w > /opt/ml/model/w.txt\n")
	code, stdout, stderr := run(t, url, "launch", "-q", "sm", "--dir", dir, "--follow")
	if code != 0 || !strings.Contains(stdout, "training from built code") {
		t.Fatalf("launch --dir on sagemaker: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	j := waitJob(t, clientFor(t, url), strings.SplitN(stdout, "\n", 2)[0], "ended", func(j job.Job) bool { return j.State.Terminal() })
	if !strings.Contains(j.Image, "/slipway-jobs@sha256:") {
		t.Errorf("image: got %q, want the pushed image by digest in slipway-jobs", j.Image)
	}
	if j.Outputs["model_artifacts"] == "" {
		t.Errorf("outputs %v: want the model artifacts", j.Outputs)
	}
}

// TestKanikoBuilderWiring checks that builder.type kaniko finds its cluster
// through the kubeconfig, and says so when there is none. No Kubernetes API
// server can run here; build/kaniko's own tests drive the Job lifecycle on
// client-go's fake clientset, directly and through the builder's REST client
// to an HTTP stand-in of the API server.
func TestKanikoBuilderWiring(t *testing.T) {
	cfg := &config.Agent{Builder: config.Builder{Type: "kaniko", BuildContextStore: "s3://ctx/prefix"}}
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "none"))
	if _, err := newImages(cfg, slog.Default()).builder(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "Kubernetes") {
		t.Fatalf("without a cluster: got %v, want an error naming Kubernetes", err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", kubeconfig)
	b, err := newImages(cfg, slog.Default()).builder(context.Background(), nil)
	if err != nil {
		t.Fatalf("with a kubeconfig: %v", err)
	}
	if _, ok := b.(*kaniko.Builder); !ok {
		t.Fatalf("got a %T, want the kaniko builder", b)
	}
}

package localaws_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/dockertest"
)

const (
	awsCLI    = "/usr/bin/aws"
	dockerCLI = "/usr/local/bin/docker"
)

// cli runs the real AWS CLI and the docker CLI against one endpoint, with
// nothing of the machine's own configuration.
type cli struct {
	t   *testing.T
	url string
	dir string
	env []string
}

func newCLI(t *testing.T, url string) *cli {
	for _, bin := range []string{awsCLI, dockerCLI} {
		if _, err := os.Stat(bin); err != nil {
			if os.Getenv("SLIPWAY_REQUIRE_DOCKER") == "1" {
				t.Fatalf("%s is missing (run scripts/deps.sh)", bin)
			}
			t.Skipf("%s is missing", bin)
		}
	}
	dir := t.TempDir()
	for _, f := range []string{"config", "credentials"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"HOME=" + dir,
		"AWS_ACCESS_KEY_ID=AKIDLOCAL", "AWS_SECRET_ACCESS_KEY=secret", "AWS_DEFAULT_REGION=us-east-1",
		"AWS_CONFIG_FILE=" + filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "credentials"),
		"AWS_PAGER=", "AWS_EC2_METADATA_DISABLED=true",
		"DOCKER_CONFIG=" + filepath.Join(dir, "docker"),
	}
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		env = append(env, "DOCKER_HOST="+h)
	}
	return &cli{t: t, url: url, dir: dir, env: env}
}

// aws runs `aws --endpoint-url URL args...` and returns its stdout; a
// non-zero exit fails the test unless wantFail, where stderr is returned.
func (c *cli) aws(stdin string, wantFail bool, args ...string) string {
	c.t.Helper()
	return c.run(awsCLI, stdin, wantFail, append([]string{"--endpoint-url", c.url, "--output", "json"}, args...)...)
}

func (c *cli) run(bin, stdin string, wantFail bool, args ...string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env, cmd.Dir = c.env, c.dir
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if wantFail {
		if err == nil {
			c.t.Fatalf("%s %s: succeeded, want a failure", filepath.Base(bin), strings.Join(args, " "))
		}
		return errb.String()
	}
	if err != nil {
		c.t.Fatalf("%s %s: %v\n%s%s", filepath.Base(bin), strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

func (c *cli) json(out string, v any) {
	c.t.Helper()
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("decoding CLI output %q: %v", out, err)
	}
}

// TestAWSCLI drives the whole dry-run flow a user would type: push an image
// through ECR, create a training job, wait, fetch the model, read the logs.
func TestAWSCLI(t *testing.T) {
	t.Parallel()
	c := setup(t)
	a := newCLI(t, c.srv.URL())
	docker := dockertest.Client(t)

	var repo struct {
		Repository struct {
			RepositoryURI string `json:"repositoryUri"`
		}
	}
	a.json(a.aws("", false, "ecr", "create-repository", "--repository-name", "cli/trainer"), &repo)
	uri := repo.Repository.RepositoryURI
	host := strings.TrimPrefix(c.srv.URL(), "http://")
	if uri != host+"/cli/trainer" {
		t.Fatalf("repositoryUri: got %s, want %s/cli/trainer", uri, host)
	}
	password := strings.TrimSpace(a.aws("", false, "ecr", "get-login-password"))
	a.run(dockerCLI, password, false, "login", "--username", "AWS", "--password-stdin", host)

	// A busybox-based image with a `train` program, as SageMaker runs it.
	ctxDir := filepath.Join(a.dir, "image")
	train := "#!/bin/sh\necho \"training $TRAINING_JOB_NAME epochs=$(cat /opt/ml/input/config/hyperparameters.json | tr -d ' \\n')\"\n" +
		"cp /opt/ml/input/data/train/data.txt /opt/ml/model/data.txt\necho weights > /opt/ml/model/weights.bin\necho finished\n"
	if err := os.MkdirAll(ctxDir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"Dockerfile": "FROM " + c.img + "\nCOPY train /bin/train\n", "train": train}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(ctxDir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tag := uri + ":v1"
	a.run(dockerCLI, "", false, "build", "-q", "-t", tag, ctxDir)
	t.Cleanup(func() { a.run(dockerCLI, "", false, "rmi", "-f", tag) })
	a.run(dockerCLI, "", false, "push", "-q", tag)

	var imgs struct {
		ImageDetails []struct{ ImageTags []string }
	}
	a.json(a.aws("", false, "ecr", "describe-images", "--repository-name", "cli/trainer"), &imgs)
	if len(imgs.ImageDetails) != 1 || len(imgs.ImageDetails[0].ImageTags) != 1 || imgs.ImageDetails[0].ImageTags[0] != "v1" {
		t.Fatalf("describe-images: got %+v, want one image tagged v1", imgs.ImageDetails)
	}
	// Only the pushed copy exists from now on: the job must pull it.
	if _, err := docker.ImageRemove(context.Background(), tag, imageRemoveOptions()); err != nil {
		t.Fatalf("removing the local copy: %v", err)
	}

	if err := os.WriteFile(filepath.Join(a.dir, "data.txt"), []byte("some data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a.aws("", false, "s3", "mb", "s3://cli-data")
	a.aws("", false, "s3", "cp", filepath.Join(a.dir, "data.txt"), "s3://cli-data/train/data.txt")
	if ls := a.aws("", false, "s3", "ls", "s3://cli-data/train/"); !strings.Contains(ls, "data.txt") {
		t.Fatalf("s3 ls: got %q, want data.txt", ls)
	}

	job := map[string]any{
		"TrainingJobName": "cli-job-1",
		"RoleArn":         "arn:aws:iam::000000000000:role/SageMakerRole",
		"AlgorithmSpecification": map[string]any{
			"TrainingImage": "000000000000.dkr.ecr.us-east-1.amazonaws.com/cli/trainer:v1", "TrainingInputMode": "File"},
		"HyperParameters": map[string]string{"epochs": "3"},
		"InputDataConfig": []any{map[string]any{"ChannelName": "train", "DataSource": map[string]any{
			"S3DataSource": map[string]any{"S3DataType": "S3Prefix", "S3Uri": "s3://cli-data/train/"}}}},
		"OutputDataConfig":  map[string]any{"S3OutputPath": "s3://cli-out/jobs"},
		"ResourceConfig":    map[string]any{"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
		"StoppingCondition": map[string]any{"MaxRuntimeInSeconds": 60},
	}
	body, _ := json.Marshal(job)
	a.aws("", false, "sagemaker", "create-training-job", "--cli-input-json", string(body))
	stderr := a.aws("", true, "sagemaker", "create-training-job", "--cli-input-json", string(body))
	if !strings.Contains(stderr, "ResourceInUse") {
		t.Errorf("duplicate create: got %q, want ResourceInUse", stderr)
	}

	var desc struct {
		TrainingJobStatus, SecondaryStatus, FailureReason string
		ModelArtifacts                                    struct{ S3ModelArtifacts string }
	}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		a.json(a.aws("", false, "sagemaker", "describe-training-job", "--training-job-name", "cli-job-1"), &desc)
		if desc.TrainingJobStatus != "InProgress" || time.Now().After(deadline) {
			break
		}
	}
	if desc.TrainingJobStatus != "Completed" {
		t.Fatalf("job: got %s/%s %q, want Completed", desc.TrainingJobStatus, desc.SecondaryStatus, desc.FailureReason)
	}
	a.aws("", false, "s3", "cp", desc.ModelArtifacts.S3ModelArtifacts, filepath.Join(a.dir, "model.tar.gz"))
	f, err := os.Open(filepath.Join(a.dir, "model.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	model := untarGz(t, f)
	f.Close()
	if model["data.txt"] != "some data\n" || model["weights.bin"] != "weights\n" {
		t.Errorf("model.tar.gz: got %v, want data.txt and weights.bin", model)
	}

	var streams struct {
		LogStreams []struct{ LogStreamName string }
	}
	a.json(a.aws("", false, "logs", "describe-log-streams", "--log-group-name", "/aws/sagemaker/TrainingJobs",
		"--log-stream-name-prefix", "cli-job-1/"), &streams)
	if len(streams.LogStreams) != 1 {
		t.Fatalf("log streams: got %+v, want one", streams.LogStreams)
	}
	var events struct{ Events []struct{ Message string } }
	a.json(a.aws("", false, "logs", "get-log-events", "--log-group-name", "/aws/sagemaker/TrainingJobs",
		"--log-stream-name", streams.LogStreams[0].LogStreamName, "--start-from-head"), &events)
	var lines []string
	for _, e := range events.Events {
		lines = append(lines, e.Message)
	}
	if got, want := strings.Join(lines, "|"), `training cli-job-1 epochs={"epochs":"3"}|finished`; got != want {
		t.Errorf("log lines: got %q, want %q", got, want)
	}

	stderr = a.aws("", true, "sagemaker", "describe-training-job", "--training-job-name", "no-such-job")
	if !strings.Contains(stderr, "ValidationException") || !strings.Contains(stderr, "Requested resource not found.") {
		t.Errorf("describe unknown: got %q, want ValidationException Requested resource not found.", stderr)
	}
	var id struct{ Account string }
	a.json(a.aws("", false, "sts", "get-caller-identity"), &id)
	if id.Account != "000000000000" {
		t.Errorf("sts account: got %s, want 000000000000", id.Account)
	}
}

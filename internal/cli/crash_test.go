package cli

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awssm "github.com/aws/aws-sdk-go-v2/service/sagemaker"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/client"
	"github.com/slipway-ml/slipway/internal/dockertest"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/localaws/localawstest"
	"github.com/slipway-ml/slipway/internal/server"
	"github.com/slipway-ml/slipway/internal/store/sqlite"
)

// mainArgs, when set in the environment, makes the test binary run the
// slipway command line with these JSON-encoded arguments instead of the
// tests: a real agent process that a test can SIGKILL.
const mainArgs = "SLIPWAY_TEST_MAIN_ARGS"

func TestMain(m *testing.M) {
	if v := os.Getenv(mainArgs); v != "" {
		var args []string
		if err := json.Unmarshal([]byte(v), &args); err != nil {
			panic(err)
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := Execute(ctx, args, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// startAgentProcess runs `slipway agent` as its own process, with AWS
// pointed at endpoint.
func startAgentProcess(t *testing.T, endpoint string, args ...string) *exec.Cmd {
	t.Helper()
	b, _ := json.Marshal(append([]string{"agent"}, args...))
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), mainArgs+"="+string(b),
		"AWS_ENDPOINT_URL="+endpoint, "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_REGION=us-east-1")
	log, err := os.Create(filepath.Join(t.TempDir(), "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("agent log:\n%s", b)
		}
	})
	return cmd
}

// TestAgentKilledMidJobCreatesOneTrainingJob kills a real agent process
// with SIGKILL while its SageMaker training job runs on the local AWS
// endpoint, starts another, and checks that the job finishes with exactly
// one training job created and every log line shipped once.
func TestAgentKilledMidJobCreatesOneTrainingJob(t *testing.T) {
	cli := dockertest.Client(t)
	img := dockertest.BaseImage(t, cli)
	local := localawstest.Start(t)
	ctx := context.Background()

	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Store: st, LeaseTTL: time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	go func() { _ = srv.Run(runCtx) }()
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { cancel(); hs.CloseClientConnections(); hs.Close(); st.Close() })
	c, err := client.New(hs.URL)
	if err != nil {
		t.Fatal(err)
	}

	if _, err := c.CreateQueue(ctx, api.CreateQueue{Name: "sm", Resource: job.SageMaker, Config: []byte(
		`{"RoleArn": "arn:aws:iam::000000000000:role/R", "OutputDataConfig": {"S3OutputPath": "s3://crash/out"},
		  "ResourceConfig": {"InstanceType": "ml.m4.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 2},
		  "StoppingCondition": {"MaxRuntimeInSeconds": 120}}`)}); err != nil {
		t.Fatal(err)
	}
	j, err := c.Enqueue(ctx, api.Enqueue{Queue: "sm", Spec: job.Spec{Image: img,
		Entrypoint: []string{"sh", "-c", "echo started; sleep 5; echo done; echo w > /opt/ml/model/w.txt"}}})
	if err != nil {
		t.Fatal(err)
	}

	first := startAgentProcess(t, local.URL(), "--server", hs.URL, "-q", "sm")
	waitJob(t, c, j.ID, "has a training job and logged", func(j job.Job) bool {
		l, _ := c.Logs(ctx, j.ID, 0, 0, 0)
		return j.ExternalID != "" && strings.Contains(texts(l.Lines), "started")
	})
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()

	startAgentProcess(t, local.URL(), "--server", hs.URL, "-q", "sm")
	j = waitJob(t, c, j.ID, "ended", func(j job.Job) bool { return j.State.Terminal() })
	if j.State != job.Finished || j.Attempt != 1 || j.Outputs["model_artifacts"] == "" {
		t.Fatalf("got %s attempt %d (%s) outputs %v, want finished attempt 1 with a model", j.State, j.Attempt, j.Reason, j.Outputs)
	}

	sm := awssm.NewFromConfig(awsConfig(local.URL()))
	list, err := sm.ListTrainingJobs(ctx, &awssm.ListTrainingJobsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(list.TrainingJobSummaries); n != 1 {
		t.Fatalf("training jobs created: got %d, want exactly 1", n)
	}
	l, err := c.Logs(ctx, j.ID, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"started", "done"} {
		if n := strings.Count(texts(l.Lines), line+"\n"); n != 1 {
			t.Errorf("log line %q shipped %d times, want once:\n%s", line, n, texts(l.Lines))
		}
	}
	var reclaimed bool
	for _, e := range j.Events {
		reclaimed = reclaimed || strings.Contains(e.Reason, "expired")
	}
	if !reclaimed {
		t.Errorf("events %+v: want the killed agent's lease to have expired", j.Events)
	}
}

func awsConfig(endpoint string) aws.Config {
	return aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}
}

func texts(lines []job.LogLine) string {
	var b strings.Builder
	for _, l := range lines {
		if l.Stream != "slipway" {
			b.WriteString(l.Text + "\n")
		}
	}
	return b.String()
}

func waitJob(t *testing.T, c *client.Client, id, what string, cond func(job.Job) bool) job.Job {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		j, err := c.Job(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if cond(j) {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s never %s; last %s (%s)", id, what, j.State, j.Reason)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

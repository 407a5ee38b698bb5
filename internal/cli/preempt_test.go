package cli

import (
	"context"
	"net/http"
	"strings"
	"testing"

	awssm "github.com/aws/aws-sdk-go-v2/service/sagemaker"

	"github.com/slipway-ml/slipway/internal/client"
	"github.com/slipway-ml/slipway/internal/dockertest"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/localaws/localawstest"
)

// TestSpotInterruptionRequeuesFromTheCheckpoint runs a spot job on the
// local endpoint through the in-process stack, interrupts its first
// attempt, and checks that the second attempt is a new training job that
// resumes from the first one's checkpoint.
func TestSpotInterruptionRequeuesFromTheCheckpoint(t *testing.T) {
	cli := dockertest.Client(t)
	img := dockertest.BaseImage(t, cli)
	local := localawstest.Start(t)
	for k, v := range map[string]string{"AWS_ENDPOINT_URL": local.URL(), "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1"} {
		t.Setenv(k, v)
	}
	url := setup(t)
	body := `{"RoleArn": "arn:aws:iam::000000000000:role/R", "OutputDataConfig": {"S3OutputPath": "s3://spot/out"},
	  "ResourceConfig": {"InstanceType": "ml.m4.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 2},
	  "EnableManagedSpotTraining": true,
	  "StoppingCondition": {"MaxRuntimeInSeconds": 120, "MaxWaitTimeInSeconds": 240},
	  "CheckpointConfig": {"S3Uri": "s3://spot/checkpoints/${job_id}"}}`
	if code, _, stderr := run(t, url, "queue", "create", "spot", "--resource", "sagemaker", "--config", body); code != 0 {
		t.Fatalf("queue create: exit %d: %s", code, stderr)
	}
	script := `if [ -f /opt/ml/checkpoints/step ]; then echo "resumed from step $(cat /opt/ml/checkpoints/step)"; exit 0; fi
echo 7 > /opt/ml/checkpoints/step; echo "checkpointed"; sleep 300`
	code, stdout, stderr := run(t, url, "launch", "-q", "spot", "--image", img, "--entrypoint", "sh -c '"+script+"'")
	if code != 0 {
		t.Fatalf("launch: exit %d: %s", code, stderr)
	}
	id := strings.TrimSpace(stdout)
	c := clientFor(t, url)
	j := waitJob(t, c, id, "checkpointed", func(j job.Job) bool {
		l, _ := c.Logs(context.Background(), id, 0, 0, 0)
		return strings.Contains(texts(l.Lines), "checkpointed")
	})
	resp, err := http.Post(local.URL()+"/_localaws/interrupt?job="+j.ExternalID, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("interrupting %s: got %d, want 204", j.ExternalID, resp.StatusCode)
	}

	t.Cleanup(func() {
		if t.Failed() {
			l, _ := c.Logs(context.Background(), id, 0, 0, 0)
			for _, line := range l.Lines {
				t.Logf("attempt %d %s: %s", line.Attempt, line.Stream, line.Text)
			}
		}
	})
	j = waitJob(t, c, id, "finished a later attempt", func(j job.Job) bool { return j.State.Terminal() && j.Attempt > 1 })
	if j.State != job.Finished || j.Attempt != 2 {
		t.Fatalf("got %s attempt %d (%s), want finished on attempt 2", j.State, j.Attempt, j.Reason)
	}
	l, err := c.Logs(context.Background(), id, 2, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(texts(l.Lines), "resumed from step 7") {
		t.Errorf("attempt 2 logs %q: want it resumed from the checkpoint", texts(l.Lines))
	}
	var path []string
	for _, e := range j.Events {
		path = append(path, string(e.To))
	}
	if got := strings.Join(path, ">"); !strings.Contains(got, "running>preempted>queued>claimed") {
		t.Errorf("events %s: want preempted then queued again", got)
	}
	list, err := awssm.NewFromConfig(awsConfig(local.URL())).ListTrainingJobs(context.Background(), &awssm.ListTrainingJobsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(list.TrainingJobSummaries); n != 2 {
		t.Errorf("training jobs: got %d, want 2 (one per attempt)", n)
	}
}

func clientFor(t *testing.T, url string) *client.Client {
	t.Helper()
	c, err := client.New(url)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

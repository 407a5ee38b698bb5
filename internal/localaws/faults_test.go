package localaws_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sagemaker"
	smtypes "github.com/aws/aws-sdk-go-v2/service/sagemaker/types"
)

func postAdmin(t *testing.T, url, body string) int {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	t.Logf("POST %s: %d %s", url, resp.StatusCode, msg)
	return resp.StatusCode
}

// TestFaultInjection turns throttling and capacity errors on and off
// through the admin endpoint.
func TestFaultInjection(t *testing.T) {
	t.Parallel()
	c := setup(t)
	ctx := context.Background()
	faults := c.srv.URL() + "/_localaws/faults"
	if got := postAdmin(t, faults, `{"ThrottleRate": 1}`); got != http.StatusOK {
		t.Fatalf("setting faults: got %d, want 200", got)
	}
	_, err := c.sm.ListTrainingJobs(ctx, &sagemaker.ListTrainingJobsInput{})
	if got := apiCode(err); got != "ThrottlingException" {
		t.Errorf("throttled call: got %v, want ThrottlingException", err)
	}
	postAdmin(t, faults, `{"CapacityErrorRate": 1}`)
	_, err = c.sm.CreateTrainingJob(ctx, c.job("no-capacity", "true"))
	if got := apiCode(err); got != "ResourceLimitExceeded" || !strings.Contains(err.Error(), "CapacityError") {
		t.Errorf("create without capacity: got %v, want ResourceLimitExceeded CapacityError", err)
	}
	if got := postAdmin(t, faults, `{"ThrottleRate": 2}`); got != http.StatusBadRequest {
		t.Errorf("rate 2: got %d, want 400", got)
	}
	postAdmin(t, faults, `{}`)
	if _, err := c.sm.ListTrainingJobs(ctx, &sagemaker.ListTrainingJobsInput{}); err != nil {
		t.Errorf("after clearing faults: got %v, want no error", err)
	}
}

// TestSpotInterruptionKeepsCheckpoints interrupts a spot job (after a slow
// start) and checks that its checkpoints went both ways.
func TestSpotInterruptionKeepsCheckpoints(t *testing.T) {
	t.Parallel()
	c := setup(t)
	ctx := context.Background()
	postAdmin(t, c.srv.URL()+"/_localaws/faults", `{"StartDelay": "500ms"}`)
	if _, err := c.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("ckpt")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("ckpt"), Key: aws.String("run1/step.txt"), Body: strings.NewReader("1")}); err != nil {
		t.Fatal(err)
	}
	in := c.job("spot-1", `echo "resumed at $(cat /opt/ml/checkpoints/step.txt)"; echo 2 > /opt/ml/checkpoints/step.txt; echo ready; sleep 300`)
	in.EnableManagedSpotTraining = aws.Bool(true)
	in.StoppingCondition.MaxWaitTimeInSeconds = aws.Int32(120)
	in.CheckpointConfig = &smtypes.CheckpointConfig{S3Uri: aws.String("s3://ckpt/run1")}
	if _, err := c.sm.CreateTrainingJob(ctx, in); err != nil {
		t.Fatalf("CreateTrainingJob: %v", err)
	}
	lines := c.waitLog(t, "spot-1", "ready")
	if !strings.Contains(lines, "resumed at 1") {
		t.Errorf("logs: got %q, want the checkpoint read back (resumed at 1)", lines)
	}
	if got := postAdmin(t, c.srv.URL()+"/_localaws/interrupt?job=spot-1", ""); got != http.StatusNoContent {
		t.Fatalf("interrupt: got %d, want 204", got)
	}
	out := c.wait(t, "spot-1")
	if out.TrainingJobStatus != smtypes.TrainingJobStatusStopped || out.SecondaryStatus != smtypes.SecondaryStatusInterrupted {
		t.Errorf("interrupted job: got %s/%s, want Stopped/Interrupted", out.TrainingJobStatus, out.SecondaryStatus)
	}
	obj, err := c.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("ckpt"), Key: aws.String("run1/step.txt")})
	if err != nil {
		t.Fatalf("GetObject checkpoint: %v", err)
	}
	b, _ := io.ReadAll(obj.Body)
	obj.Body.Close()
	if got := strings.TrimSpace(string(b)); got != "2" {
		t.Errorf("checkpoint after interruption: got %q, want 2", got)
	}
}

// TestMultiInstance runs two hosts that talk to each other by name.
func TestMultiInstance(t *testing.T) {
	t.Parallel()
	c := setup(t)
	// busybox nc half-closes as soon as its stdin ends, and algo-2's stdin
	// is empty: a client whose data came from a pipe not yet written could
	// see that end and leave without sending. From a file, the data is read
	// before the socket. A connect that timed out on algo-1's side after
	// algo-2 took it is tried again, and algo-2 listens again.
	script := `if [ "$(hostname)" = algo-2 ]; then got=; until [ "$got" = hello ]; do got=$(nc -l -p 9000); done; echo "got $got"; else
echo hello > /tmp/hello; until nc -w 5 algo-2 9000 < /tmp/hello; do sleep 0.2; done; fi; echo "$(hostname) done"`
	in := c.job("multi-1", script)
	in.ResourceConfig.InstanceCount = aws.Int32(2)
	in.StoppingCondition.MaxRuntimeInSeconds = aws.Int32(60)
	if _, err := c.sm.CreateTrainingJob(context.Background(), in); err != nil {
		t.Fatalf("CreateTrainingJob: %v", err)
	}
	out := c.wait(t, "multi-1")
	if out.TrainingJobStatus != smtypes.TrainingJobStatusCompleted {
		t.Fatalf("status: got %s/%s %q, want Completed", out.TrainingJobStatus, out.SecondaryStatus, aws.ToString(out.FailureReason))
	}
	if lines := c.waitLog(t, "multi-1", "got hello"); !strings.Contains(lines, "algo-2 done") {
		t.Errorf("algo-2 logs: got %q, want algo-2 done", lines)
	}
}

// waitLog polls the job's log streams until one holds a line with want and
// returns that stream's lines.
func (c *clients) waitLog(t *testing.T, name, want string) string {
	t.Helper()
	ctx := context.Background()
	group := aws.String("/aws/sagemaker/TrainingJobs")
	seen := map[string]string{} // stream → its lines, for the failure message
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		streams, err := c.logs.DescribeLogStreams(ctx, &cloudwatchlogs.DescribeLogStreamsInput{LogGroupName: group, LogStreamNamePrefix: aws.String(name + "/")})
		if err != nil {
			continue // the group appears with the first line
		}
		for _, st := range streams.LogStreams {
			evs, err := c.logs.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: group, LogStreamName: st.LogStreamName, StartFromHead: aws.Bool(true)})
			if err != nil {
				t.Fatalf("GetLogEvents: %v", err)
			}
			var lines []string
			for _, e := range evs.Events {
				lines = append(lines, aws.ToString(e.Message))
			}
			text := strings.Join(lines, "\n")
			if strings.Contains(text, want) {
				return text
			}
			seen[aws.ToString(st.LogStreamName)] = text
		}
	}
	t.Fatalf("no log line of %s holds %q; its streams: %q", name, want, seen)
	return ""
}

package localaws_test

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sagemaker"
	smtypes "github.com/aws/aws-sdk-go-v2/service/sagemaker/types"
)

// TestTrainingJobContract runs a job through the container contract: config
// files, channel data, environment, model and output uploads, log lines.
func TestTrainingJobContract(t *testing.T) {
	t.Parallel()
	c := setup(t)
	ctx := context.Background()
	if _, err := c.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("data")}); err != nil {
		t.Fatalf("CreateBucket: %v", err)
	}
	script := `set -e
echo "hello from $TRAINING_JOB_NAME on $(hostname)"
echo "lr=$(cat /opt/ml/input/config/hyperparameters.json | tr -d ' \n')"
cat /opt/ml/input/config/resourceconfig.json | tr -d ' \n'; echo
cat /opt/ml/input/data/train/a.csv /opt/ml/input/data/train/sub/b.csv > /opt/ml/model/all.csv
echo "$MY_VAR" > /opt/ml/model/env.txt
echo metrics > /opt/ml/output/data/metrics.txt
echo done`
	objects := map[string]string{"train/a.csv": "1,2\n", "train/sub/b.csv": "3,4\n", "code/train.sh": script}
	for key, body := range objects {
		if _, err := c.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("data"), Key: aws.String(key), Body: strings.NewReader(body)}); err != nil {
			t.Fatalf("PutObject: %v", err)
		}
	}
	in := c.job("contract-1", "sh /opt/ml/input/data/code/train.sh")
	in.HyperParameters = map[string]string{"lr": "0.1"}
	in.Environment = map[string]string{"MY_VAR": "my-value"}
	in.InputDataConfig = []smtypes.Channel{{ChannelName: aws.String("train"), DataSource: &smtypes.DataSource{
		S3DataSource: &smtypes.S3DataSource{S3DataType: smtypes.S3DataTypeS3Prefix, S3Uri: aws.String("s3://data/train")}}},
		{ChannelName: aws.String("code"), DataSource: &smtypes.DataSource{
			S3DataSource: &smtypes.S3DataSource{S3DataType: smtypes.S3DataTypeS3Prefix, S3Uri: aws.String("s3://data/code/")}}}}
	created, err := c.sm.CreateTrainingJob(ctx, in)
	if err != nil {
		t.Fatalf("CreateTrainingJob: %v", err)
	}
	if got, want := aws.ToString(created.TrainingJobArn), "arn:aws:sagemaker:us-east-1:000000000000:training-job/contract-1"; got != want {
		t.Errorf("TrainingJobArn: got %s, want %s", got, want)
	}
	out := c.wait(t, "contract-1")
	if out.TrainingJobStatus != smtypes.TrainingJobStatusCompleted {
		t.Fatalf("status: got %s (%s), want Completed", out.TrainingJobStatus, aws.ToString(out.FailureReason))
	}
	var seen []string
	for _, tr := range out.SecondaryStatusTransitions {
		seen = append(seen, string(tr.Status))
	}
	if got, want := strings.Join(seen, ","), "Starting,Downloading,Training,Uploading,Completed"; got != want {
		t.Errorf("transitions: got %s, want %s", got, want)
	}
	if out.CreationTime == nil || out.TrainingStartTime == nil || out.TrainingEndTime == nil {
		t.Errorf("timestamps: got creation %v start %v end %v, want all set", out.CreationTime, out.TrainingStartTime, out.TrainingEndTime)
	}
	wantModel := "s3://out/models/contract-1/output/model.tar.gz"
	if out.ModelArtifacts == nil || aws.ToString(out.ModelArtifacts.S3ModelArtifacts) != wantModel {
		t.Fatalf("ModelArtifacts: got %+v, want %s", out.ModelArtifacts, wantModel)
	}
	obj, err := c.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("out"), Key: aws.String("models/contract-1/output/model.tar.gz")})
	if err != nil {
		t.Fatalf("GetObject model: %v", err)
	}
	files := untarGz(t, obj.Body)
	obj.Body.Close()
	if got, want := files["all.csv"], "1,2\n3,4\n"; got != want {
		t.Errorf("model all.csv: got %q, want %q", got, want)
	}
	if got, want := files["env.txt"], "my-value\n"; got != want {
		t.Errorf("model env.txt: got %q, want %q", got, want)
	}
	obj, err = c.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("out"), Key: aws.String("models/contract-1/output/output.tar.gz")})
	if err != nil {
		t.Fatalf("GetObject output: %v", err)
	}
	if got := untarGz(t, obj.Body)["metrics.txt"]; got != "metrics\n" {
		t.Errorf("output metrics.txt: got %q, want %q", got, "metrics\n")
	}
	obj.Body.Close()

	streams, err := c.logs.DescribeLogStreams(ctx, &cloudwatchlogs.DescribeLogStreamsInput{
		LogGroupName: aws.String("/aws/sagemaker/TrainingJobs"), LogStreamNamePrefix: aws.String("contract-1/")})
	if err != nil {
		t.Fatalf("DescribeLogStreams: %v", err)
	}
	if len(streams.LogStreams) != 1 || !strings.HasPrefix(aws.ToString(streams.LogStreams[0].LogStreamName), "contract-1/algo-1-") {
		t.Fatalf("log streams: got %+v, want one contract-1/algo-1-<epoch>", streams.LogStreams)
	}
	evs, err := c.logs.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String("/aws/sagemaker/TrainingJobs"),
		LogStreamName: streams.LogStreams[0].LogStreamName, StartFromHead: aws.Bool(true)})
	if err != nil {
		t.Fatalf("GetLogEvents: %v", err)
	}
	var lines []string
	for _, e := range evs.Events {
		lines = append(lines, aws.ToString(e.Message))
	}
	text := strings.Join(lines, "\n")
	for _, want := range []string{"hello from contract-1 on algo-1", `lr={"lr":"0.1"}`, `"current_host":"algo-1"`, "done"} {
		if !strings.Contains(text, want) {
			t.Errorf("logs: got %q, want a line with %q", text, want)
		}
	}
	again, err := c.logs.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String("/aws/sagemaker/TrainingJobs"),
		LogStreamName: streams.LogStreams[0].LogStreamName, NextToken: evs.NextForwardToken})
	if err != nil {
		t.Fatalf("GetLogEvents with token: %v", err)
	}
	if len(again.Events) != 0 || aws.ToString(again.NextForwardToken) != aws.ToString(evs.NextForwardToken) {
		t.Errorf("at the end: got %d events, token %s, want 0 and the same token %s", len(again.Events),
			aws.ToString(again.NextForwardToken), aws.ToString(evs.NextForwardToken))
	}
}

// TestTrainingJobFailure reports the failure file and the exit code.
func TestTrainingJobFailure(t *testing.T) {
	t.Parallel()
	c := setup(t)
	_, err := c.sm.CreateTrainingJob(context.Background(), c.job("fails-1", `echo "bad data" > /opt/ml/output/failure; exit 3`))
	if err != nil {
		t.Fatalf("CreateTrainingJob: %v", err)
	}
	out := c.wait(t, "fails-1")
	if out.TrainingJobStatus != smtypes.TrainingJobStatusFailed || out.SecondaryStatus != smtypes.SecondaryStatusFailed {
		t.Fatalf("status: got %s/%s, want Failed/Failed", out.TrainingJobStatus, out.SecondaryStatus)
	}
	if got, want := aws.ToString(out.FailureReason), "AlgorithmError: bad data, exit code: 3"; got != want {
		t.Errorf("FailureReason: got %q, want %q", got, want)
	}
}

// TestStopAndMaxRuntime stops one job by hand and lets another run out of time.
func TestStopAndMaxRuntime(t *testing.T) {
	t.Parallel()
	c := setup(t)
	ctx := context.Background()
	if _, err := c.sm.CreateTrainingJob(ctx, c.job("stop-me", `echo started; sleep 300`)); err != nil {
		t.Fatalf("CreateTrainingJob: %v", err)
	}
	slow := c.job("too-slow", `sleep 300`)
	slow.StoppingCondition.MaxRuntimeInSeconds = aws.Int32(1)
	if _, err := c.sm.CreateTrainingJob(ctx, slow); err != nil {
		t.Fatalf("CreateTrainingJob: %v", err)
	}
	c.waitSecondary(t, "stop-me", smtypes.SecondaryStatusTraining)
	if _, err := c.sm.StopTrainingJob(ctx, &sagemaker.StopTrainingJobInput{TrainingJobName: aws.String("stop-me")}); err != nil {
		t.Fatalf("StopTrainingJob: %v", err)
	}
	out := c.wait(t, "stop-me")
	if out.TrainingJobStatus != smtypes.TrainingJobStatusStopped || out.SecondaryStatus != smtypes.SecondaryStatusStopped {
		t.Errorf("stopped job: got %s/%s, want Stopped/Stopped", out.TrainingJobStatus, out.SecondaryStatus)
	}
	if out.ModelArtifacts == nil {
		t.Errorf("stopped job: got no ModelArtifacts, want the model uploaded as SageMaker does")
	}
	out = c.wait(t, "too-slow")
	if out.TrainingJobStatus != smtypes.TrainingJobStatusStopped || out.SecondaryStatus != smtypes.SecondaryStatusMaxRuntimeExceeded {
		t.Errorf("slow job: got %s/%s, want Stopped/MaxRuntimeExceeded", out.TrainingJobStatus, out.SecondaryStatus)
	}
	_, err := c.sm.StopTrainingJob(ctx, &sagemaker.StopTrainingJobInput{TrainingJobName: aws.String("too-slow")})
	if got := apiCode(err); got != "ValidationException" {
		t.Errorf("stopping a stopped job: got %v, want ValidationException", err)
	}
}

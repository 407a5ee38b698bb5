package oci

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	awsecr "github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/sagemaker"
	smtypes "github.com/aws/aws-sdk-go-v2/service/sagemaker/types"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway-ml/slipway/internal/build"
	"github.com/slipway-ml/slipway/internal/build/buildtest"
	"github.com/slipway-ml/slipway/internal/dockertest"
	"github.com/slipway-ml/slipway/internal/localaws/localawstest"
	"github.com/slipway-ml/slipway/internal/registry/ecr"
)

// TestECRAndSageMaker: the base pushed once to the local AWS endpoint's ECR,
// the code appended without a daemon into another ECR repository (created
// on the way), and the image run as a training job on the local SageMaker.
func TestECRAndSageMaker(t *testing.T) {
	t.Parallel()
	srv := localawstest.Start(t)
	cli := dockertest.Client(t)
	t.Cleanup(func() { buildtest.RemoveImages(cli, srv.RegistryHost()+"/") })
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDLOCAL", "secret", ""),
		BaseEndpoint: aws.String(srv.URL())}
	ecrClient := awsecr.NewFromConfig(cfg)
	ctx := context.Background()

	baseReg, err := ecr.New(ecr.Config{Client: ecrClient, Repository: "base/busybox"})
	if err != nil {
		t.Fatal(err)
	}
	baseRepo, err := baseReg.Repository(ctx)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := baseReg.Auth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	baseRef, _ := name.NewTag(baseRepo + ":1")
	if err := remote.Write(baseRef, buildtest.BusyboxImage(t), remote.WithAuth(auth)); err != nil {
		t.Fatal(err)
	}

	dst, err := ecr.New(ecr.Config{Client: ecrClient, Repository: "jobs/train"})
	if err != nil {
		t.Fatal(err)
	}
	logs := &buildtest.Lines{}
	req := build.Request{Registry: dst, Log: logs.Add, Context: buildtest.Context(t, map[string]string{
		"Dockerfile": "FROM " + baseRef.String() + "\nWORKDIR /app\nCOPY . .\nENTRYPOINT [\"sh\", \"/app/run.sh\"]\n",
		"run.sh":     "echo \"trained with $(cat /app/params.txt)\"\n",
		"params.txt": "lr=0.1",
	})}
	res, err := New(Config{}).Build(ctx, req)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, logs)
	}
	if again, err := New(Config{}).Build(ctx, req); err != nil || !again.Skipped || again.Image != res.Image {
		t.Errorf("rebuild = %+v, %v; want skipped with %s (DescribeImages found the tag)", again, err, res.Image)
	}

	sm := sagemaker.NewFromConfig(cfg)
	jobName := "oci-built-" + res.Tag[:8]
	_, err = sm.CreateTrainingJob(ctx, &sagemaker.CreateTrainingJobInput{
		TrainingJobName: aws.String(jobName),
		RoleArn:         aws.String("arn:aws:iam::000000000000:role/SageMakerRole"),
		AlgorithmSpecification: &smtypes.AlgorithmSpecification{
			TrainingImage: aws.String(res.Image), TrainingInputMode: smtypes.TrainingInputModeFile,
		},
		OutputDataConfig:  &smtypes.OutputDataConfig{S3OutputPath: aws.String("s3://out/models")},
		ResourceConfig:    &smtypes.ResourceConfig{InstanceType: smtypes.TrainingInstanceTypeMlM5Large, InstanceCount: aws.Int32(1), VolumeSizeInGB: aws.Int32(1)},
		StoppingCondition: &smtypes.StoppingCondition{MaxRuntimeInSeconds: aws.Int32(60)},
	})
	if err != nil {
		t.Fatalf("CreateTrainingJob with %s: %v", res.Image, err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		out, err := sm.DescribeTrainingJob(waitCtx, &sagemaker.DescribeTrainingJobInput{TrainingJobName: aws.String(jobName)})
		if err != nil {
			t.Fatal(err)
		}
		if out.TrainingJobStatus == smtypes.TrainingJobStatusCompleted {
			break
		}
		if out.TrainingJobStatus == smtypes.TrainingJobStatusFailed || out.TrainingJobStatus == smtypes.TrainingJobStatusStopped {
			t.Fatalf("training job %s: %s (%s), want Completed; logs:\n%s", jobName, out.TrainingJobStatus, aws.ToString(out.FailureReason), jobLogs(t, cfg, jobName))
		}
		select {
		case <-waitCtx.Done():
			t.Fatalf("training job %s still %s", jobName, out.TrainingJobStatus)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if want, got := "trained with lr=0.1", jobLogs(t, cfg, jobName); !strings.Contains(got, want) {
		t.Errorf("training logs %q lack %q", got, want)
	}
}

// jobLogs returns a training job's CloudWatch log lines.
func jobLogs(t *testing.T, cfg aws.Config, jobName string) string {
	t.Helper()
	ev, err := cloudwatchlogs.NewFromConfig(cfg).FilterLogEvents(context.Background(), &cloudwatchlogs.FilterLogEventsInput{
		LogGroupName: aws.String("/aws/sagemaker/TrainingJobs"), LogStreamNamePrefix: aws.String(jobName)})
	if err != nil {
		t.Fatal(err)
	}
	var text []string
	for _, e := range ev.Events {
		text = append(text, aws.ToString(e.Message))
	}
	return strings.Join(text, "\n")
}

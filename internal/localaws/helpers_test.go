package localaws_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sagemaker"
	smtypes "github.com/aws/aws-sdk-go-v2/service/sagemaker/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/docker/docker/api/types/image"

	"github.com/slipway-ml/slipway/internal/dockertest"
	"github.com/slipway-ml/slipway/internal/localaws"
	"github.com/slipway-ml/slipway/internal/localaws/localawstest"
)

// clients are the real AWS SDK clients pointed at one local endpoint.
type clients struct {
	srv  *localaws.Server
	sm   *sagemaker.Client
	s3   *s3.Client
	ecr  *ecr.Client
	logs *cloudwatchlogs.Client
	sts  *sts.Client
	img  string // the busybox base image
}

func sdkConfig(url string) aws.Config {
	return aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDLOCAL", "secret", ""),
		BaseEndpoint: aws.String(url),
		// Few retries keep throttling tests short.
		RetryMaxAttempts: 1,
	}
}

func setup(t *testing.T, cfg ...localaws.Config) *clients {
	t.Helper()
	srv := localawstest.Start(t, cfg...)
	c := sdkConfig(srv.URL())
	return &clients{
		srv:  srv,
		sm:   sagemaker.NewFromConfig(c),
		s3:   s3.NewFromConfig(c, func(o *s3.Options) { o.UsePathStyle = true }),
		ecr:  ecr.NewFromConfig(c),
		logs: cloudwatchlogs.NewFromConfig(c),
		sts:  sts.NewFromConfig(c),
		img:  dockertest.BaseImage(t, dockertest.Client(t)),
	}
}

// job returns a valid CreateTrainingJob request running script under sh.
func (c *clients) job(name, script string) *sagemaker.CreateTrainingJobInput {
	return &sagemaker.CreateTrainingJobInput{
		TrainingJobName: aws.String(name),
		RoleArn:         aws.String("arn:aws:iam::000000000000:role/SageMakerRole"),
		AlgorithmSpecification: &smtypes.AlgorithmSpecification{
			TrainingImage:       aws.String(c.img),
			TrainingInputMode:   smtypes.TrainingInputModeFile,
			ContainerEntrypoint: []string{"sh", "-c", script},
		},
		OutputDataConfig:  &smtypes.OutputDataConfig{S3OutputPath: aws.String("s3://out/models")},
		ResourceConfig:    &smtypes.ResourceConfig{InstanceType: smtypes.TrainingInstanceTypeMlM5Large, InstanceCount: aws.Int32(1), VolumeSizeInGB: aws.Int32(1)},
		StoppingCondition: &smtypes.StoppingCondition{MaxRuntimeInSeconds: aws.Int32(60)},
	}
}

// wait polls DescribeTrainingJob until the job is Completed, Failed or Stopped.
func (c *clients) wait(t *testing.T, name string) *sagemaker.DescribeTrainingJobOutput {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for {
		out, err := c.sm.DescribeTrainingJob(ctx, &sagemaker.DescribeTrainingJobInput{TrainingJobName: aws.String(name)})
		if err != nil {
			t.Fatalf("DescribeTrainingJob %s: %v", name, err)
		}
		switch out.TrainingJobStatus {
		case smtypes.TrainingJobStatusCompleted, smtypes.TrainingJobStatusFailed, smtypes.TrainingJobStatusStopped:
			return out
		}
		select {
		case <-ctx.Done():
			t.Fatalf("job %s still %s/%s", name, out.TrainingJobStatus, out.SecondaryStatus)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitSecondary polls until the job reaches a secondary status.
func (c *clients) waitSecondary(t *testing.T, name string, want smtypes.SecondaryStatus) {
	t.Helper()
	for i := 0; i < 600; i++ {
		out, err := c.sm.DescribeTrainingJob(context.Background(), &sagemaker.DescribeTrainingJobInput{TrainingJobName: aws.String(name)})
		if err != nil {
			t.Fatalf("DescribeTrainingJob %s: %v", name, err)
		}
		if out.SecondaryStatus == want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("job %s never reached %s", name, want)
}

// apiCode returns the AWS error code of err, or "" when it has none.
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// untarGz reads a gzipped tar into name -> content.
func untarGz(t *testing.T, r io.Reader) map[string]string {
	t.Helper()
	zr, err := gzip.NewReader(r)
	if err != nil {
		t.Fatalf("model.tar.gz is not gzip: %v", err)
	}
	tr := tar.NewReader(zr)
	files := map[string]string{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatalf("reading tar: %v", err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		b, _ := io.ReadAll(tr)
		files[hdr.Name] = string(b)
	}
}

func localawsConfig(maxRunning int) localaws.Config {
	return localaws.Config{MaxRunningJobs: maxRunning, StopGrace: time.Second, StopOnShutdown: true, MaxInstanceCount: 4}
}

type cwEvent struct {
	ts  int64
	msg string
}

func toInput(evs []cwEvent) []cwtypes.InputLogEvent {
	var out []cwtypes.InputLogEvent
	for _, e := range evs {
		out = append(out, cwtypes.InputLogEvent{Timestamp: aws.Int64(e.ts), Message: aws.String(e.msg)})
	}
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }

// pushBlob uploads a blob to the registry in one monolithic PUT and returns
// its digest.
func pushBlob(t *testing.T, base, repo string, body []byte) string {
	t.Helper()
	digest := fmt.Sprintf("sha256:%x", sha256.Sum256(body))
	resp, err := http.Post(base+"/v2/"+repo+"/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusAccepted || loc == "" {
		t.Fatalf("starting upload: got %d, want 202 with a Location", resp.StatusCode)
	}
	if !strings.HasPrefix(loc, "http") {
		loc = base + loc
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	req, _ := http.NewRequest(http.MethodPut, loc+sep+"digest="+digest, bytes.NewReader(body))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("finishing upload: got %d, want 201", resp.StatusCode)
	}
	return digest
}

func imageRemoveOptions() image.RemoveOptions { return image.RemoveOptions{Force: true} }

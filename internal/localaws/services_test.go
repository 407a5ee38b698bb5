package localaws_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sagemaker"
	smtypes "github.com/aws/aws-sdk-go-v2/service/sagemaker/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

func TestSTSGetCallerIdentity(t *testing.T) {
	t.Parallel()
	c := setup(t)
	out, err := c.sts.GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatalf("GetCallerIdentity: %v", err)
	}
	if got, want := aws.ToString(out.Account), "000000000000"; got != want {
		t.Errorf("Account: got %s, want %s", got, want)
	}
	if !strings.HasPrefix(aws.ToString(out.Arn), "arn:aws:iam::000000000000:") {
		t.Errorf("Arn: got %s, want one in account 000000000000", aws.ToString(out.Arn))
	}
}

func TestS3Objects(t *testing.T) {
	t.Parallel()
	c := setup(t)
	ctx := context.Background()
	b := aws.String("bkt")
	if _, err := c.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatalf("CreateBucket: %v", err)
	}
	if _, err := c.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("a/one.txt"), Body: strings.NewReader("one")}); err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	// Multipart: two parts, the first at S3's 5 MiB minimum.
	mp, err := c.s3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: aws.String("a/big.bin")})
	if err != nil {
		t.Fatalf("CreateMultipartUpload: %v", err)
	}
	part1 := bytes.Repeat([]byte("x"), 5<<20)
	var parts []s3types.CompletedPart
	for i, body := range [][]byte{part1, []byte("tail")} {
		up, err := c.s3.UploadPart(ctx, &s3.UploadPartInput{Bucket: b, Key: aws.String("a/big.bin"), UploadId: mp.UploadId,
			PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(body)})
		if err != nil {
			t.Fatalf("UploadPart %d: %v", i+1, err)
		}
		parts = append(parts, s3types.CompletedPart{ETag: up.ETag, PartNumber: aws.Int32(int32(i + 1))})
	}
	if _, err := c.s3.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: b, Key: aws.String("a/big.bin"),
		UploadId: mp.UploadId, MultipartUpload: &s3types.CompletedMultipartUpload{Parts: parts}}); err != nil {
		t.Fatalf("CompleteMultipartUpload: %v", err)
	}
	list, err := c.s3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: b, Prefix: aws.String("a/")})
	if err != nil {
		t.Fatalf("ListObjectsV2: %v", err)
	}
	var keys []string
	for _, o := range list.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	if got, want := strings.Join(keys, ","), "a/big.bin,a/one.txt"; got != want {
		t.Errorf("keys: got %s, want %s", got, want)
	}
	obj, err := c.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: aws.String("a/big.bin")})
	if err != nil {
		t.Fatalf("GetObject: %v", err)
	}
	body, _ := io.ReadAll(obj.Body)
	obj.Body.Close()
	if got, want := len(body), len(part1)+4; got != want {
		t.Errorf("multipart object size: got %d, want %d", got, want)
	}
	if _, err := c.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b, Key: aws.String("a/one.txt")}); err != nil {
		t.Fatalf("DeleteObject: %v", err)
	}
	_, err = c.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: aws.String("a/one.txt")})
	if got := apiCode(err); got != "NoSuchKey" {
		t.Errorf("GetObject after delete: got %v, want NoSuchKey", err)
	}
}

func TestECRRepositories(t *testing.T) {
	t.Parallel()
	c := setup(t)
	ctx := context.Background()
	out, err := c.ecr.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String("team/model")})
	if err != nil {
		t.Fatalf("CreateRepository: %v", err)
	}
	host := strings.TrimPrefix(c.srv.URL(), "http://")
	if got, want := aws.ToString(out.Repository.RepositoryUri), host+"/team/model"; got != want {
		t.Errorf("RepositoryUri: got %s, want %s", got, want)
	}
	_, err = c.ecr.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String("team/model")})
	if got := apiCode(err); got != "RepositoryAlreadyExistsException" {
		t.Errorf("second CreateRepository: got %v, want RepositoryAlreadyExistsException", err)
	}
	_, err = c.ecr.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{RepositoryNames: []string{"nope"}})
	if got := apiCode(err); got != "RepositoryNotFoundException" {
		t.Errorf("DescribeRepositories nope: got %v, want RepositoryNotFoundException", err)
	}
	tok, err := c.ecr.GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		t.Fatalf("GetAuthorizationToken: %v", err)
	}
	raw, _ := base64.StdEncoding.DecodeString(aws.ToString(tok.AuthorizationData[0].AuthorizationToken))
	if !strings.HasPrefix(string(raw), "AWS:") || aws.ToString(tok.AuthorizationData[0].ProxyEndpoint) != c.srv.URL() {
		t.Errorf("token: got %q at %s, want AWS:... at %s", raw, aws.ToString(tok.AuthorizationData[0].ProxyEndpoint), c.srv.URL())
	}
	// Push an image manifest straight through the registry API, as docker would.
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	cfgDigest := pushBlob(t, c.srv.URL(), "team/model", config)
	manifest := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":` +
		itoa(len(config)) + `,"digest":"` + cfgDigest + `"},"layers":[]}`
	req, _ := http.NewRequest(http.MethodPut, c.srv.URL()+"/v2/team/model/manifests/v1", strings.NewReader(manifest))
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("putting manifest: %v %v", err, resp)
	}
	resp.Body.Close()
	imgs, err := c.ecr.DescribeImages(ctx, &ecr.DescribeImagesInput{RepositoryName: aws.String("team/model")})
	if err != nil {
		t.Fatalf("DescribeImages: %v", err)
	}
	if len(imgs.ImageDetails) != 1 || !slices.Equal(imgs.ImageDetails[0].ImageTags, []string{"v1"}) {
		t.Fatalf("images: got %+v, want one tagged v1", imgs.ImageDetails)
	}
	_, err = c.ecr.DescribeImages(ctx, &ecr.DescribeImagesInput{RepositoryName: aws.String("team/model"),
		ImageIds: []ecrtypes.ImageIdentifier{{ImageTag: aws.String("v2")}}})
	if got := apiCode(err); got != "ImageNotFoundException" {
		t.Errorf("DescribeImages v2: got %v, want ImageNotFoundException", err)
	}
	got, err := c.ecr.BatchGetImage(ctx, &ecr.BatchGetImageInput{RepositoryName: aws.String("team/model"),
		ImageIds: []ecrtypes.ImageIdentifier{{ImageTag: aws.String("v1")}, {ImageTag: aws.String("v9")}}})
	if err != nil {
		t.Fatalf("BatchGetImage: %v", err)
	}
	if len(got.Images) != 1 || aws.ToString(got.Images[0].ImageManifest) != manifest || len(got.Failures) != 1 ||
		got.Failures[0].FailureCode != ecrtypes.ImageFailureCodeImageNotFound {
		t.Errorf("BatchGetImage: got %d images, failures %+v, want 1 image and an ImageNotFound failure", len(got.Images), got.Failures)
	}
	// Pushing to a repository that does not exist is refused, as on ECR.
	resp, err = http.Post(c.srv.URL()+"/v2/other/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("push to unknown repository: got %d, want 404", resp.StatusCode)
	}
}

func TestLogsAPI(t *testing.T) {
	t.Parallel()
	c := setup(t)
	ctx := context.Background()
	g, s := aws.String("grp"), aws.String("str")
	if _, err := c.logs.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: g}); err != nil {
		t.Fatalf("CreateLogGroup: %v", err)
	}
	if _, err := c.logs.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: g, LogStreamName: s}); err != nil {
		t.Fatalf("CreateLogStream: %v", err)
	}
	var evs []cwEvent
	for i, m := range []string{"alpha one", "beta two", "alpha three"} {
		evs = append(evs, cwEvent{int64(1000 + i), m})
	}
	if _, err := c.logs.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: g, LogStreamName: s, LogEvents: toInput(evs)}); err != nil {
		t.Fatalf("PutLogEvents: %v", err)
	}
	page, err := c.logs.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: g, LogStreamName: s, StartFromHead: aws.Bool(true), Limit: aws.Int32(2)})
	if err != nil {
		t.Fatalf("GetLogEvents: %v", err)
	}
	if len(page.Events) != 2 || aws.ToString(page.Events[0].Message) != "alpha one" {
		t.Fatalf("first page: got %d events, want 2 starting with alpha one", len(page.Events))
	}
	page, err = c.logs.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: g, LogStreamName: s, NextToken: page.NextForwardToken, Limit: aws.Int32(2)})
	if err != nil {
		t.Fatalf("GetLogEvents page 2: %v", err)
	}
	if len(page.Events) != 1 || aws.ToString(page.Events[0].Message) != "alpha three" {
		t.Errorf("second page: got %d events, want alpha three", len(page.Events))
	}
	f, err := c.logs.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: g, FilterPattern: aws.String("alpha")})
	if err != nil {
		t.Fatalf("FilterLogEvents: %v", err)
	}
	if len(f.Events) != 2 {
		t.Errorf("filter alpha: got %d events, want 2", len(f.Events))
	}
	_, err = c.logs.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: g, LogStreamName: aws.String("nope")})
	if got := apiCode(err); got != "ResourceNotFoundException" {
		t.Errorf("unknown stream: got %v, want ResourceNotFoundException", err)
	}
}

func TestSageMakerErrors(t *testing.T) {
	t.Parallel()
	c := setup(t, localawsConfig(2))
	ctx := context.Background()
	cases := []struct {
		name string
		edit func(*sagemaker.CreateTrainingJobInput)
		want string
	}{
		{"bad-name", func(in *sagemaker.CreateTrainingJobInput) { in.TrainingJobName = aws.String("bad_name") }, "ValidationException"},
		{"bad-role", func(in *sagemaker.CreateTrainingJobInput) { in.RoleArn = aws.String("not-an-arn-but-long-enough") }, "ValidationException"},
		{"bad-output", func(in *sagemaker.CreateTrainingJobInput) { in.OutputDataConfig.S3OutputPath = aws.String("/tmp/out") }, "ValidationException"},
		{"spot-wait", func(in *sagemaker.CreateTrainingJobInput) {
			in.EnableManagedSpotTraining = aws.Bool(true)
			in.StoppingCondition.MaxWaitTimeInSeconds = aws.Int32(10)
		}, "ValidationException"},
		{"bad-env", func(in *sagemaker.CreateTrainingJobInput) { in.Environment = map[string]string{"1BAD": "x"} }, "ValidationException"},
		{"too-many", func(in *sagemaker.CreateTrainingJobInput) { in.ResourceConfig.InstanceCount = aws.Int32(9) }, "ValidationException"},
	}
	for _, tc := range cases {
		in := c.job("err-"+tc.name, "true")
		tc.edit(in)
		_, err := c.sm.CreateTrainingJob(ctx, in)
		if got := apiCode(err); got != tc.want {
			t.Errorf("%s: got %v, want %s", tc.name, err, tc.want)
		}
	}
	_, err := c.sm.DescribeTrainingJob(ctx, &sagemaker.DescribeTrainingJobInput{TrainingJobName: aws.String("missing")})
	if got := apiCode(err); got != "ValidationException" || !strings.Contains(err.Error(), "Requested resource not found.") {
		t.Errorf("describe missing: got %v, want ValidationException Requested resource not found.", err)
	}
	for _, n := range []string{"lim-1", "lim-2"} {
		if _, err := c.sm.CreateTrainingJob(ctx, c.job(n, "sleep 300")); err != nil {
			t.Fatalf("CreateTrainingJob %s: %v", n, err)
		}
	}
	_, err = c.sm.CreateTrainingJob(ctx, c.job("lim-1", "true"))
	if got := apiCode(err); got != "ResourceInUse" {
		t.Errorf("duplicate: got %v, want ResourceInUse", err)
	}
	_, err = c.sm.CreateTrainingJob(ctx, c.job("lim-3", "true"))
	if got := apiCode(err); got != "ResourceLimitExceeded" {
		t.Errorf("third running job: got %v, want ResourceLimitExceeded", err)
	}
	_, err = c.sm.DeleteTrainingJob(ctx, &sagemaker.DeleteTrainingJobInput{TrainingJobName: aws.String("lim-1")})
	if got := apiCode(err); got != "ValidationException" {
		t.Errorf("delete running: got %v, want ValidationException", err)
	}
	list, err := c.sm.ListTrainingJobs(ctx, &sagemaker.ListTrainingJobsInput{SortBy: smtypes.SortByName,
		SortOrder: smtypes.SortOrderDescending, MaxResults: aws.Int32(1), StatusEquals: smtypes.TrainingJobStatusInProgress})
	if err != nil {
		t.Fatalf("ListTrainingJobs: %v", err)
	}
	if len(list.TrainingJobSummaries) != 1 || aws.ToString(list.TrainingJobSummaries[0].TrainingJobName) != "lim-2" || list.NextToken == nil {
		t.Fatalf("list page 1: got %+v next %v, want lim-2 and a token", list.TrainingJobSummaries, list.NextToken)
	}
	list, err = c.sm.ListTrainingJobs(ctx, &sagemaker.ListTrainingJobsInput{SortBy: smtypes.SortByName,
		SortOrder: smtypes.SortOrderDescending, MaxResults: aws.Int32(1), NextToken: list.NextToken, StatusEquals: smtypes.TrainingJobStatusInProgress})
	if err != nil || len(list.TrainingJobSummaries) != 1 || aws.ToString(list.TrainingJobSummaries[0].TrainingJobName) != "lim-1" {
		t.Fatalf("list page 2: got %+v, %v, want lim-1", list, err)
	}
	for _, n := range []string{"lim-1", "lim-2"} {
		if _, err := c.sm.StopTrainingJob(ctx, &sagemaker.StopTrainingJobInput{TrainingJobName: aws.String(n)}); err != nil {
			t.Fatalf("StopTrainingJob %s: %v", n, err)
		}
		c.wait(t, n)
	}
	if _, err := c.sm.DeleteTrainingJob(ctx, &sagemaker.DeleteTrainingJobInput{TrainingJobName: aws.String("lim-1")}); err != nil {
		t.Fatalf("DeleteTrainingJob: %v", err)
	}
	_, err = c.sm.DescribeTrainingJob(ctx, &sagemaker.DescribeTrainingJobInput{TrainingJobName: aws.String("lim-1")})
	if got := apiCode(err); got != "ValidationException" {
		t.Errorf("describe deleted: got %v, want ValidationException", err)
	}
}

// TestWireErrorShape checks the raw answer for a request that the SDK would
// have refused to send: HTTP 400 with {"__type", "message"}.
func TestWireErrorShape(t *testing.T) {
	t.Parallel()
	c := setup(t)
	req, _ := http.NewRequest(http.MethodPost, c.srv.URL()+"/", strings.NewReader(`{"TrainingJobName":"x"}`))
	req.Header.Set("X-Amz-Target", "SageMaker.CreateTrainingJob")
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("decoding error body: %v", err)
	}
	if resp.StatusCode != http.StatusBadRequest || body["__type"] != "ValidationException" ||
		!strings.Contains(body["message"], "roleArn") || !strings.Contains(body["message"], "resourceConfig") {
		t.Errorf("got %d %v, want 400 ValidationException naming roleArn and resourceConfig", resp.StatusCode, body)
	}
}

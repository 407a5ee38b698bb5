package preflight

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sagemaker"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/slipway-ml/slipway/internal/config"
	"github.com/slipway-ml/slipway/internal/localaws/localawstest"
)

// clients talk to a real local AWS endpoint through the real SDK.
type clients struct {
	sts *sts.Client
	sm  *sagemaker.Client
	ecr *ecr.Client
	s3  *s3.Client
}

func setup(t *testing.T) clients {
	t.Helper()
	srv := localawstest.Start(t)
	ac := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("k", "s", ""), BaseEndpoint: aws.String(srv.URL())}
	return clients{sts.NewFromConfig(ac), sagemaker.NewFromConfig(ac), ecr.NewFromConfig(ac),
		s3.NewFromConfig(ac, func(o *s3.Options) { o.UsePathStyle = true })}
}

func agentConfig(t *testing.T, yaml string) *config.Agent {
	t.Helper()
	a, err := config.ParseAgent([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return a.WithDefaults()
}

const agentYAML = `
environment: {type: aws, region: us-east-1}
registry:    {type: ecr, repository: my-repo}
builder:     {type: kaniko, build-context-store: s3://ctx-bucket/prefix}
queues: [sagemaker-queue]
max_jobs: 4
`

func byName(checks []Check) map[string]Check {
	m := map[string]Check{}
	for _, c := range checks {
		m[strings.Fields(c.Name)[0]] = c
	}
	return m
}

func TestMissingRepositoryAndBucketSayHowToFix(t *testing.T) {
	t.Parallel()
	c := setup(t)
	got := byName(run(context.Background(), agentConfig(t, agentYAML), "us-east-1", c.sts, c.sm, c.ecr, c.s3))
	for _, name := range []string{"region", "credentials", "sagemaker"} {
		if !got[name].OK {
			t.Errorf("%s: got failed (%s), want ok", name, got[name].Detail)
		}
	}
	if r := got["ecr"]; r.OK || !strings.Contains(r.Fix, "aws ecr create-repository --repository-name my-repo") {
		t.Errorf("missing repository: got %+v, want a failure whose fix creates my-repo", r)
	}
	if b := got["build-context-store"]; b.OK || !strings.Contains(b.Fix, "aws s3 mb s3://ctx-bucket") {
		t.Errorf("missing bucket: got %+v, want a failure whose fix makes ctx-bucket", b)
	}
}

func TestEverythingInPlacePasses(t *testing.T) {
	t.Parallel()
	c := setup(t)
	ctx := context.Background()
	if _, err := c.ecr.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String("my-repo")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("ctx-bucket")}); err != nil {
		t.Fatal(err)
	}
	for _, check := range run(ctx, agentConfig(t, agentYAML), "us-east-1", c.sts, c.sm, c.ecr, c.s3) {
		if !check.OK {
			t.Errorf("%s: got failed (%s; fix: %s), want ok", check.Name, check.Detail, check.Fix)
		}
	}
}

func TestNoRegionStopsEarly(t *testing.T) {
	t.Parallel()
	checks := run(context.Background(), agentConfig(t, "queues: [q]"), "", nil, nil, nil, nil)
	if len(checks) != 1 || checks[0].OK || !strings.Contains(checks[0].Fix, "AWS_REGION") {
		t.Fatalf("got %+v, want one failed region check naming AWS_REGION", checks)
	}
}

// Package preflight checks an agent's cloud setup before it runs jobs:
// region, credentials, the SageMaker API, the ECR repository and the build
// context bucket, each with what to do when it fails. `slipway agent
// verify` prints its findings.
package preflight

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sagemaker"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/slipway-ml/slipway/internal/config"
)

// Check is one finding.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"` // what to do when it failed
}

// The few AWS calls made, declared here so that tests and callers need not
// know the SDK.
type (
	stsAPI interface {
		GetCallerIdentity(context.Context, *sts.GetCallerIdentityInput, ...func(*sts.Options)) (*sts.GetCallerIdentityOutput, error)
	}
	sagemakerAPI interface {
		ListTrainingJobs(context.Context, *sagemaker.ListTrainingJobsInput, ...func(*sagemaker.Options)) (*sagemaker.ListTrainingJobsOutput, error)
	}
	ecrAPI interface {
		DescribeRepositories(context.Context, *ecr.DescribeRepositoriesInput, ...func(*ecr.Options)) (*ecr.DescribeRepositoriesOutput, error)
	}
	s3API interface {
		HeadBucket(context.Context, *s3.HeadBucketInput, ...func(*s3.Options)) (*s3.HeadBucketOutput, error)
	}
)

// Run checks cfg's setup with credentials and region from the standard AWS
// chain (environment, shared profile, SSO, IMDS), overridden by cfg's
// environment block. It returns every finding; none is skipped because an
// earlier one failed, unless it cannot be asked at all.
func Run(ctx context.Context, cfg *config.Agent) []Check {
	ac, err := cfg.Environment.AWS(ctx)
	if err != nil {
		return []Check{{Name: "aws config", Detail: err.Error(), Fix: "check AWS_PROFILE and ~/.aws/config"}}
	}
	// A custom S3 endpoint (a local one) wants path-style addressing.
	pathStyle := os.Getenv("AWS_ENDPOINT_URL") != "" || os.Getenv("AWS_ENDPOINT_URL_S3") != ""
	return run(ctx, cfg, ac.Region, sts.NewFromConfig(ac), sagemaker.NewFromConfig(ac), ecr.NewFromConfig(ac),
		s3.NewFromConfig(ac, func(o *s3.Options) { o.UsePathStyle = pathStyle }))
}

func run(ctx context.Context, cfg *config.Agent, region string, st stsAPI, sm sagemakerAPI, er ecrAPI, s3c s3API) []Check {
	var out []Check
	if region == "" {
		return append(out, Check{Name: "region", Detail: "no region set",
			Fix: "set environment.region in the agent config, or AWS_REGION, or region in your AWS profile"})
	}
	out = append(out, Check{Name: "region", OK: true, Detail: region})

	id, err := st.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return append(out, Check{Name: "credentials", Detail: short(err),
			Fix: "give the agent AWS credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, `aws sso login`, or an instance role"})
	}
	out = append(out, Check{Name: "credentials", OK: true, Detail: fmt.Sprintf("account %s as %s", aws.ToString(id.Account), aws.ToString(id.Arn))})

	if _, err := sm.ListTrainingJobs(ctx, &sagemaker.ListTrainingJobsInput{MaxResults: aws.Int32(1)}); err != nil {
		out = append(out, Check{Name: "sagemaker", Detail: short(err),
			Fix: "allow sagemaker:ListTrainingJobs, CreateTrainingJob, DescribeTrainingJob and StopTrainingJob for the agent"})
	} else {
		out = append(out, Check{Name: "sagemaker", OK: true, Detail: "the SageMaker API answers"})
	}

	if repo := ecrRepository(cfg); repo != "" {
		out = append(out, checkRepository(ctx, er, repo, region))
	}
	if store := cfg.Builder.BuildContextStore; store != "" {
		out = append(out, checkBucket(ctx, s3c, store))
	}
	return out
}

// ecrRepository is the repository an ECR registry block names, "" if none.
func ecrRepository(cfg *config.Agent) string {
	if cfg.Registry.Type != "ecr" {
		return ""
	}
	if cfg.Registry.Repository != "" {
		return cfg.Registry.Repository
	}
	_, repo, _ := strings.Cut(cfg.Registry.URI, "/")
	repo, _, _ = strings.Cut(repo, ":")
	return repo
}

func checkRepository(ctx context.Context, er ecrAPI, repo, region string) Check {
	name := "ecr repository " + repo
	out, err := er.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{RepositoryNames: []string{repo}})
	var notFound *ecrtypes.RepositoryNotFoundException
	switch {
	case errors.As(err, &notFound):
		return Check{Name: name, Detail: "does not exist",
			Fix: fmt.Sprintf("create it: aws ecr create-repository --repository-name %s --region %s (or allow ecr:CreateRepository and the agent creates it on first push)", repo, region)}
	case err != nil:
		return Check{Name: name, Detail: short(err), Fix: "allow ecr:DescribeRepositories for the agent"}
	case len(out.Repositories) == 0:
		return Check{Name: name, Detail: "not listed", Fix: "check the repository name"}
	}
	return Check{Name: name, OK: true, Detail: aws.ToString(out.Repositories[0].RepositoryUri)}
}

func checkBucket(ctx context.Context, s3c s3API, store string) Check {
	name := "build-context-store " + store
	u, err := url.Parse(store)
	if err != nil || u.Scheme != "s3" || u.Host == "" {
		return Check{Name: name, Detail: "not an s3://bucket/prefix URI", Fix: "set builder.build-context-store to s3://BUCKET/PREFIX"}
	}
	if _, err := s3c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(u.Host)}); err != nil {
		return Check{Name: name, Detail: short(err),
			Fix: fmt.Sprintf("create the bucket (aws s3 mb s3://%s) or allow s3:ListBucket, s3:PutObject and s3:GetObject on it", u.Host)}
	}
	return Check{Name: name, OK: true, Detail: "bucket reachable"}
}

// short trims an SDK error to its last, most telling part.
func short(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ", api error "); i >= 0 {
		return s[i+2:]
	}
	return s
}

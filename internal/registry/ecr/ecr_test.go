package ecr

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/localaws/localawstest"
	"github.com/slipway-ml/slipway/internal/registry"
)

// countingAPI counts token requests on a real client.
type countingAPI struct {
	API
	tokens atomic.Int32
}

func (c *countingAPI) GetAuthorizationToken(ctx context.Context, in *ecr.GetAuthorizationTokenInput, opts ...func(*ecr.Options)) (*ecr.GetAuthorizationTokenOutput, error) {
	c.tokens.Add(1)
	return c.API.GetAuthorizationToken(ctx, in, opts...)
}

// setup starts the local AWS endpoint (ECR with a real registry behind it).
func setup(t *testing.T) (*countingAPI, string) {
	t.Helper()
	srv := localawstest.Start(t)
	client := ecr.NewFromConfig(aws.Config{
		Region:       "us-east-2",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDLOCAL", "secret", ""),
		BaseEndpoint: aws.String(srv.URL()),
	})
	return &countingAPI{API: client}, srv.RegistryHost()
}

func TestRepositoryExistsPush(t *testing.T) {
	t.Parallel()
	api, host := setup(t)
	ctx := context.Background()
	r, err := New(Config{Client: api, Repository: "team/train"})
	if err != nil {
		t.Fatal(err)
	}
	uri, err := r.Repository(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if uri != host+"/team/train" {
		t.Errorf("repository %q, want %q (created on first use)", uri, host+"/team/train")
	}
	if _, err := api.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{RepositoryNames: []string{"team/train"}}); err != nil {
		t.Errorf("the repository was not created: %v", err)
	}
	if d, ok, err := r.Exists(ctx, "abc"); err != nil || ok {
		t.Fatalf("Exists before push = %q, %v, %v; want false, nil", d, ok, err)
	}

	auth, err := r.Auth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(128, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag(uri + ":abc")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(auth)); err != nil {
		t.Fatalf("pushing with the ECR token: %v", err)
	}
	want, _ := img.Digest()
	if d, ok, err := r.Exists(ctx, "abc"); err != nil || !ok || d != want.String() {
		t.Errorf("Exists after push = %q, %v, %v; want %s, true, nil", d, ok, err, want)
	}

	// Another agent's registry finds the repository there and the tag in it.
	other, err := New(Config{Client: api, URI: "123456789012.dkr.ecr.us-east-2.amazonaws.com/team/train"})
	if err != nil {
		t.Fatal(err)
	}
	if d, ok, err := other.Exists(ctx, "abc"); err != nil || !ok || d != want.String() {
		t.Errorf("Exists from a second registry = %q, %v, %v; want %s, true, nil", d, ok, err, want)
	}
}

func TestAuthCached(t *testing.T) {
	t.Parallel()
	api, _ := setup(t)
	ctx := context.Background()
	now := time.Now()
	r, err := New(Config{Client: api, Repository: "cache-test", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := r.Auth(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := api.tokens.Load(); got != 1 {
		t.Errorf("GetAuthorizationToken calls = %d, want 1 while the token is fresh", got)
	}
	now = r.expires.Add(-time.Minute) // within the refresh margin
	if _, err := r.Auth(ctx); err != nil {
		t.Fatal(err)
	}
	if got := api.tokens.Load(); got != 2 {
		t.Errorf("GetAuthorizationToken calls = %d, want 2 once the token nears its expiry", got)
	}
	a, _ := r.Auth(ctx)
	cfg, err := a.Authorization()
	if err != nil || cfg.Username != "AWS" || cfg.Password == "" {
		t.Errorf("credentials %+v, %v; want AWS and a password", cfg, err)
	}
}

func TestUnreachable(t *testing.T) {
	t.Parallel()
	client := ecr.NewFromConfig(aws.Config{
		Region:           "us-east-2",
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDLOCAL", "secret", ""),
		BaseEndpoint:     aws.String("http://127.0.0.1:1"),
		RetryMaxAttempts: 1,
	})
	r, err := New(Config{Client: client, Repository: "x1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := r.Exists(context.Background(), "abc"); ok || !errors.Is(err, registry.ErrUnreachable) {
		t.Errorf("Exists with ECR down = %v, %v; want false, ErrUnreachable", ok, err)
	}
}

func TestNewInvalid(t *testing.T) {
	t.Parallel()
	for _, c := range []Config{{Repository: "UPPER"}, {Repository: "a"}, {}, {URI: "123456789012.dkr.ecr.us-east-2.amazonaws.com/"}} {
		c.Client = &countingAPI{}
		if _, err := New(c); !errors.Is(err, job.ErrInvalid) || !strings.Contains(err.Error(), "repository name") {
			t.Errorf("New(%+v) = %v, want ErrInvalid naming the repository", c, err)
		}
	}
}

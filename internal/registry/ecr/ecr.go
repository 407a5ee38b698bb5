// Package ecr is a registry.Registry for Amazon ECR through the AWS SDK for
// Go v2: the authorization token cached until it expires, the repository
// created when missing, and DescribeImages for the tag-exists check. Any
// endpoint the SDK is pointed at works, AWS_ENDPOINT_URL_ECR included (the
// tests use the local AWS endpoint, whose ECR has a real registry behind it).
package ecr

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/registry"
)

// API is the part of the ECR client the registry calls (*ecr.Client).
type API interface {
	GetAuthorizationToken(ctx context.Context, in *ecr.GetAuthorizationTokenInput, opts ...func(*ecr.Options)) (*ecr.GetAuthorizationTokenOutput, error)
	DescribeRepositories(ctx context.Context, in *ecr.DescribeRepositoriesInput, opts ...func(*ecr.Options)) (*ecr.DescribeRepositoriesOutput, error)
	CreateRepository(ctx context.Context, in *ecr.CreateRepositoryInput, opts ...func(*ecr.Options)) (*ecr.CreateRepositoryOutput, error)
	DescribeImages(ctx context.Context, in *ecr.DescribeImagesInput, opts ...func(*ecr.Options)) (*ecr.DescribeImagesOutput, error)
}

// Config says which repository to use.
type Config struct {
	// Client calls ECR. Required.
	Client API
	// Repository is the repository name (registry.repository,
	// builder.destination without its host, or the queue's EcrRepoName).
	// Required unless URI is set.
	Repository string
	// URI is <account>.dkr.ecr.<region>.amazonaws.com/<name>; its name is
	// used when Repository is empty. Default "".
	URI string
	// Refresh is how long before its expiry a token is renewed. Default 5m.
	Refresh time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Registry is one ECR repository.
type Registry struct {
	cfg Config

	mu      sync.Mutex
	uri     string // repositoryUri, once known
	auth    authn.Authenticator
	expires time.Time
}

var _ registry.Registry = (*Registry)(nil)

var repoName = regexp.MustCompile(`^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$`)

// New checks cfg and returns its registry. It makes no request.
func New(cfg Config) (*Registry, error) {
	if cfg.Client == nil {
		return nil, errors.New("ecr registry: no ECR client")
	}
	if cfg.Repository == "" && cfg.URI != "" {
		_, cfg.Repository, _ = strings.Cut(strings.TrimPrefix(cfg.URI, "https://"), "/")
		cfg.Repository, _, _ = strings.Cut(cfg.Repository, ":")
	}
	if n := len(cfg.Repository); n < 2 || n > 256 || !repoName.MatchString(cfg.Repository) {
		return nil, fmt.Errorf("%w: ECR repository name %q: want lower-case letters, digits and . _ - / (2-256 characters)", job.ErrInvalid, cfg.Repository)
	}
	if cfg.Refresh == 0 {
		cfg.Refresh = 5 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Registry{cfg: cfg}, nil
}

// Name is the repository's name in ECR.
func (r *Registry) Name() string { return r.cfg.Repository }

// Repository implements registry.Registry: the repositoryUri, the
// repository created first when it is missing.
func (r *Registry) Repository(ctx context.Context) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.uri != "" {
		return r.uri, nil
	}
	name := r.cfg.Repository
	out, err := r.cfg.Client.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{RepositoryNames: []string{name}})
	var nf *types.RepositoryNotFoundException
	switch {
	case errors.As(err, &nf):
		created, err := r.cfg.Client.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String(name)})
		var exists *types.RepositoryAlreadyExistsException
		if errors.As(err, &exists) {
			return "", fmt.Errorf("creating ECR repository %s: created by someone else meanwhile, try again: %w", name, err)
		}
		if err != nil {
			return "", fmt.Errorf("creating ECR repository %s: %w", name, err)
		}
		r.uri = aws.ToString(created.Repository.RepositoryUri)
	case err != nil:
		return "", fmt.Errorf("describing ECR repository %s: %w: %w", name, registry.ErrUnreachable, err)
	case len(out.Repositories) == 0:
		return "", fmt.Errorf("describing ECR repository %s: no repository in the answer", name)
	default:
		r.uri = aws.ToString(out.Repositories[0].RepositoryUri)
	}
	return r.uri, nil
}

// Exists implements registry.Registry with DescribeImages.
func (r *Registry) Exists(ctx context.Context, tag string) (string, bool, error) {
	if _, err := r.Repository(ctx); err != nil {
		return "", false, err
	}
	out, err := r.cfg.Client.DescribeImages(ctx, &ecr.DescribeImagesInput{
		RepositoryName: aws.String(r.cfg.Repository),
		ImageIds:       []types.ImageIdentifier{{ImageTag: aws.String(tag)}},
	})
	var nf *types.ImageNotFoundException
	switch {
	case errors.As(err, &nf):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("describing image %s:%s: %w: %w", r.cfg.Repository, tag, registry.ErrUnreachable, err)
	case len(out.ImageDetails) == 0:
		return "", false, nil
	}
	return aws.ToString(out.ImageDetails[0].ImageDigest), true, nil
}

// Auth implements registry.Registry: the token from GetAuthorizationToken,
// reused until Refresh before it expires.
func (r *Registry) Auth(ctx context.Context) (authn.Authenticator, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.cfg.Now()
	if r.auth != nil && now.Before(r.expires.Add(-r.cfg.Refresh)) {
		return r.auth, nil
	}
	out, err := r.cfg.Client.GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		return nil, fmt.Errorf("getting an ECR authorization token: %w", err)
	}
	if len(out.AuthorizationData) == 0 {
		return nil, errors.New("getting an ECR authorization token: no authorization data")
	}
	d := out.AuthorizationData[0]
	raw, err := base64.StdEncoding.DecodeString(aws.ToString(d.AuthorizationToken))
	if err != nil {
		return nil, fmt.Errorf("decoding the ECR authorization token: %w", err)
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return nil, errors.New("decoding the ECR authorization token: want user:password")
	}
	r.auth = &authn.Basic{Username: user, Password: pass}
	r.expires = now.Add(12 * time.Hour) // ECR's token lifetime, when the answer has none
	if d.ExpiresAt != nil {
		r.expires = *d.ExpiresAt
	}
	return r.auth, nil
}

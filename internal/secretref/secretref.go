// Package secretref resolves a job's secret references on the agent's
// machine, for the local runners: "secretsmanager:<ARN or name>" with
// Secrets Manager's GetSecretValue and "ssm:/<path>" with SSM's
// GetParameter (decrypted). SageMaker jobs resolve their references inside
// the container instead, with their execution role.
//
// Credentials, region and endpoint come from the aws.Config it is given
// (the agent's: the SDK's default chain, the agent config's region,
// AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE>), so the same resolver
// reads AWS and the local endpoint of internal/localaws. Only this package
// imports the two SDK clients.
package secretref

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go"

	"github.com/slipway-ml/slipway/internal/job"
)

// secretsAPI is the part of the Secrets Manager client the resolver calls.
type secretsAPI interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// parametersAPI is the part of the SSM client the resolver calls.
type parametersAPI interface {
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, opts ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

// Resolver reads the values of secret references. It is safe for
// concurrent use.
type Resolver struct {
	load func(ctx context.Context) (aws.Config, error)

	mu      sync.Mutex
	secrets secretsAPI
	params  parametersAPI
}

// New returns a Resolver that makes its clients from the config load
// returns, the first time it resolves a reference: an agent whose jobs
// bring no reference never needs AWS credentials or a region.
func New(load func(ctx context.Context) (aws.Config, error)) *Resolver {
	return &Resolver{load: load}
}

// NewFromConfig returns a Resolver whose clients are made from cfg.
func NewFromConfig(cfg aws.Config) *Resolver {
	return New(func(context.Context) (aws.Config, error) { return cfg, nil })
}

// clients makes the SDK clients once, retrying a failed load next time.
func (r *Resolver) clients(ctx context.Context) (secretsAPI, parametersAPI, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.secrets != nil {
		return r.secrets, r.params, nil
	}
	if r.load == nil {
		return nil, nil, fmt.Errorf("%w: no AWS config to resolve secret references with", job.ErrInvalid)
	}
	cfg, err := r.load(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("loading AWS config: %w", err)
	}
	if cfg.Region == "" {
		return nil, nil, fmt.Errorf("%w: no AWS region: set environment.region in the agent config, or AWS_REGION, or a region in the AWS profile", job.ErrInvalid)
	}
	r.secrets, r.params = secretsmanager.NewFromConfig(cfg), ssm.NewFromConfig(cfg)
	return r.secrets, r.params, nil
}

// Resolve returns the value s refers to. A sealed value is not a reference
// and is refused. Errors name the secret and its reference (never a value)
// and say what to fix; a missing secret wraps job.ErrNotFound, a refused
// read job.ErrForbidden.
func (r *Resolver) Resolve(ctx context.Context, s job.Secret) (string, error) {
	if err := s.Validate(); err != nil {
		return "", err
	}
	if strings.HasPrefix(s.Ref, job.SealedRef) {
		return "", fmt.Errorf("%w: secret %s is a sealed value, not a reference", job.ErrInvalid, s.Name)
	}
	sm, ps, err := r.clients(ctx)
	if err != nil {
		return "", fmt.Errorf("resolving secret %s (%s): %w", s.Name, s.Ref, err)
	}
	var v string
	switch {
	case strings.HasPrefix(s.Ref, job.SecretsManagerRef):
		v, err = getSecret(ctx, sm, strings.TrimPrefix(s.Ref, job.SecretsManagerRef))
	default:
		v, err = getParameter(ctx, ps, strings.TrimPrefix(s.Ref, job.SSMRef))
	}
	if err != nil {
		return "", fmt.Errorf("resolving secret %s (%s): %w", s.Name, s.Ref, err)
	}
	return v, nil
}

func getSecret(ctx context.Context, c secretsAPI, id string) (string, error) {
	var opts []func(*secretsmanager.Options)
	// A full ARN names its region, which may not be the agent's.
	if a, err := arn.Parse(id); err == nil && a.Region != "" {
		opts = append(opts, func(o *secretsmanager.Options) { o.Region = a.Region })
	}
	out, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)}, opts...)
	if err != nil {
		return "", explain(err, "secretsmanager:GetSecretValue on the secret, and kms:Decrypt on its KMS key when that is a customer-managed key")
	}
	switch {
	case out.SecretString != nil:
		return *out.SecretString, nil
	case out.SecretBinary != nil:
		return string(out.SecretBinary), nil
	}
	return "", fmt.Errorf("%w: the secret's current version holds no value", job.ErrNotFound)
}

func getParameter(ctx context.Context, c parametersAPI, name string) (string, error) {
	out, err := c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)})
	if err != nil {
		return "", explain(err, "ssm:GetParameter on the parameter, and kms:Decrypt on its KMS key for a SecureString")
	}
	if out.Parameter == nil || out.Parameter.Value == nil {
		return "", fmt.Errorf("%w: the parameter holds no value", job.ErrNotFound)
	}
	return *out.Parameter.Value, nil
}

// explain turns an AWS error into what the user must fix; perms names the
// permissions the agent's credentials need.
func explain(err error, perms string) error {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return err
	}
	switch ae.ErrorCode() {
	case "ResourceNotFoundException", "ParameterNotFound", "ParameterVersionNotFound":
		return fmt.Errorf("%w: it does not exist in this account and region (%s)", job.ErrNotFound, ae.ErrorCode())
	case "UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException":
		return fmt.Errorf("%w: the agent's AWS credentials were refused (%s): check the credentials the SDK's default chain finds", job.ErrForbidden, ae.ErrorCode())
	case "AccessDeniedException", "AccessDenied", "KMS.AccessDeniedException":
		return fmt.Errorf("%w: access denied (%s): the agent's credentials need %s", job.ErrForbidden, ae.ErrorMessage(), perms)
	case "DecryptionFailure", "InvalidCiphertextException", "KMS.KMSInvalidStateException":
		return fmt.Errorf("%w: its value cannot be decrypted (%s): the agent's credentials need kms:Decrypt on its KMS key", job.ErrForbidden, ae.ErrorMessage())
	case "InvalidRequestException":
		return fmt.Errorf("%w: %s", job.ErrConflict, ae.ErrorMessage())
	}
	return err
}

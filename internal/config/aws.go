package config

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
)

// AWS loads the AWS config from the standard chain (environment variables,
// shared profile, SSO, IMDS), with e's region and profile over it, then
// opts.
func (e Environment) AWS(ctx context.Context, opts ...func(*awsconfig.LoadOptions) error) (aws.Config, error) {
	var base []func(*awsconfig.LoadOptions) error
	if e.Region != "" {
		base = append(base, awsconfig.WithRegion(e.Region))
	}
	if e.Profile != "" {
		base = append(base, awsconfig.WithSharedConfigProfile(e.Profile))
	}
	ac, err := awsconfig.LoadDefaultConfig(ctx, append(base, opts...)...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading AWS config: %w", err)
	}
	return ac, nil
}

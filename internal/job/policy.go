package job

import (
	"fmt"
	"slices"
	"strings"
)

// Policy is what an admin allows a queue's jobs to ask for. A zero field
// allows anything; a job outside the policy is refused at enqueue with
// ErrForbidden and the rule it broke, and the agent checks again, with the
// built image, before it submits.
type Policy struct {
	// RoleArns lists the IAM roles a sagemaker job may run as.
	RoleArns []string `json:"role_arns,omitempty"`
	// Images lists the registries or repositories a job's image may come
	// from, as prefixes: "123456789012.dkr.ecr.us-east-1.amazonaws.com/"
	// (a registry) or ".../team/train" (a repository, any tag or digest).
	Images []string `json:"images,omitempty"`
	// InstanceTypes lists the SageMaker instance types a job may use.
	InstanceTypes []string `json:"instance_types,omitempty"`
	// MaxInstanceCount caps ResourceConfig.InstanceCount; 0: no cap.
	MaxInstanceCount int `json:"max_instance_count,omitempty"`
	// MaxRuntimeSeconds caps StoppingCondition.MaxRuntimeInSeconds; 0: no cap.
	MaxRuntimeSeconds int `json:"max_runtime_seconds,omitempty"`
	// SpotRequired makes sagemaker jobs use managed spot training.
	SpotRequired bool `json:"spot_required,omitempty"`
	// GitURLs lists the repositories a job's code may be fetched from
	// (launch --git), as prefixes: "https://github.com/acme/" (an owner) or
	// "git@github.com:acme/train" (a repository). Set it on a queue that
	// people other than the agent's owner launch to: it also keeps them from
	// having the agent fetch a repository from the agent's own disk
	// (file://), unless a prefix allows it.
	GitURLs []string `json:"git_urls,omitempty"`
}

// IsZero reports whether p allows everything.
func (p *Policy) IsZero() bool {
	return p == nil || (len(p.RoleArns) == 0 && len(p.Images) == 0 && len(p.InstanceTypes) == 0 &&
		p.MaxInstanceCount == 0 && p.MaxRuntimeSeconds == 0 && !p.SpotRequired && len(p.GitURLs) == 0)
}

// Validate checks a policy before it is stored.
func (p *Policy) Validate() error {
	if p == nil {
		return nil
	}
	for _, r := range p.RoleArns {
		if !strings.HasPrefix(r, "arn:") || strings.ContainsAny(r, " \t\n") {
			return fmt.Errorf("%w: policy.role_arns: %q: want an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)", ErrInvalid, r)
		}
	}
	for _, im := range p.Images {
		if im == "" || strings.ContainsAny(im, " \t\n") {
			return fmt.Errorf("%w: policy.images: %q: want a registry or repository prefix", ErrInvalid, im)
		}
	}
	for _, it := range p.InstanceTypes {
		if !strings.HasPrefix(it, "ml.") {
			return fmt.Errorf("%w: policy.instance_types: %q: want a SageMaker instance type like ml.m5.xlarge", ErrInvalid, it)
		}
	}
	for _, g := range p.GitURLs {
		if g == "" || strings.ContainsAny(g, " \t\n") {
			return fmt.Errorf("%w: policy.git_urls: %q: want a repository URL or a prefix of one, like https://github.com/acme/", ErrInvalid, g)
		}
	}
	if p.MaxInstanceCount < 0 || p.MaxRuntimeSeconds < 0 {
		return fmt.Errorf("%w: policy: max_instance_count and max_runtime_seconds: want 0 (no cap) or more", ErrInvalid)
	}
	return nil
}

// PolicyInput is what a policy judges of one job: the members of the run
// it would start. Empty or zero members are not known yet and not judged
// (an image still to be built, the role of a local run).
type PolicyInput struct {
	RoleArn           string
	Image             string
	InstanceType      string
	InstanceCount     int
	MaxRuntimeSeconds int
	Spot              *bool // nil: not a sagemaker run
	GitURL            string
}

// Check returns ErrForbidden, naming the rule, for a job outside p.
func (p *Policy) Check(in PolicyInput) error {
	if p == nil {
		return nil
	}
	refuse := func(rule, format string, args ...any) error {
		return fmt.Errorf("%w: queue policy %s: %s", ErrForbidden, rule, fmt.Sprintf(format, args...))
	}
	if len(p.RoleArns) > 0 && in.RoleArn != "" && !slices.Contains(p.RoleArns, in.RoleArn) {
		return refuse("role_arns", "RoleArn %s is not one of %s", in.RoleArn, strings.Join(p.RoleArns, ", "))
	}
	if len(p.Images) > 0 && in.Image != "" && !slices.ContainsFunc(p.Images, func(pre string) bool { return imageUnder(in.Image, pre) }) {
		return refuse("images", "image %s is not under %s", in.Image, strings.Join(p.Images, ", "))
	}
	if len(p.InstanceTypes) > 0 && in.InstanceType != "" && !slices.Contains(p.InstanceTypes, in.InstanceType) {
		return refuse("instance_types", "InstanceType %s is not one of %s", in.InstanceType, strings.Join(p.InstanceTypes, ", "))
	}
	if p.MaxInstanceCount > 0 && in.InstanceCount > p.MaxInstanceCount {
		return refuse("max_instance_count", "InstanceCount %d is more than %d", in.InstanceCount, p.MaxInstanceCount)
	}
	if p.MaxRuntimeSeconds > 0 && in.Spot != nil && (in.MaxRuntimeSeconds == 0 || in.MaxRuntimeSeconds > p.MaxRuntimeSeconds) {
		return refuse("max_runtime_seconds", "MaxRuntimeInSeconds %d is more than %d (or unset)", in.MaxRuntimeSeconds, p.MaxRuntimeSeconds)
	}
	if p.SpotRequired && in.Spot != nil && !*in.Spot {
		return refuse("spot_required", "the job must use managed spot training (EnableManagedSpotTraining: true)")
	}
	if len(p.GitURLs) > 0 && in.GitURL != "" && !slices.ContainsFunc(p.GitURLs, func(pre string) bool { return gitUnder(in.GitURL, pre) }) {
		return refuse("git_urls", "git URL %s is not under %s", in.GitURL, strings.Join(p.GitURLs, ", "))
	}
	return nil
}

// gitUnder reports whether url is prefix itself or lies under it: a prefix
// ending in '/' or ':' is matched as is; any other ends at a path boundary
// or ".git", so that ".../acme" does not allow ".../acme-evil".
func gitUnder(url, prefix string) bool {
	if !strings.HasPrefix(url, prefix) {
		return false
	}
	rest := url[len(prefix):]
	return rest == "" || rest == ".git" || strings.HasSuffix(prefix, "/") || strings.HasSuffix(prefix, ":") || rest[0] == '/'
}

// imageUnder reports whether image is prefix itself or lies under it: a
// prefix ending in '/' or ':' is matched as is; any other ends at a path,
// tag or digest boundary, so that ".../team" does not allow ".../team-evil".
func imageUnder(image, prefix string) bool {
	if !strings.HasPrefix(image, prefix) {
		return false
	}
	if len(image) == len(prefix) || strings.HasSuffix(prefix, "/") || strings.HasSuffix(prefix, ":") {
		return true
	}
	switch image[len(prefix)] {
	case '/', ':', '@':
		return true
	}
	return false
}

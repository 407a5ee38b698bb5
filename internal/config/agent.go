package config

import (
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/slipway-ml/slipway/internal/job"
)

// Accepted values of the typed agent keys.
var (
	EnvironmentTypes = []string{"aws", "gcp", "azure", "local"}
	RegistryTypes    = []string{"ecr", "oci", "acr", "gcr"}
	BuilderTypes     = []string{"auto", "docker", "kaniko", "noop", "oci"}
	Platforms        = []string{"linux/amd64", "linux/arm64"}
)

// Agent is the agent's config file. It accepts the keys of a W&B Launch
// agent's launch-config.yaml as written, plus Slipway's own (server).
// Defaults are those WithDefaults fills in.
type Agent struct {
	// Server is the URL of the Slipway server. Default "": the agent's
	// --server flag, SLIPWAY_SERVER, or the local `slipway up` address.
	Server string `yaml:"server"`
	// Queues are the queues the agent claims jobs from; at least one.
	// No default.
	Queues []string `yaml:"queues"`
	// MaxJobs caps the jobs the agent runs at once; -1 is unlimited.
	// Default 1 (also when written as 0).
	MaxJobs int `yaml:"max_jobs"`
	// Environment is where the agent's cloud calls go. Default: see Environment.
	Environment Environment `yaml:"environment"`
	// Registry is where built images are pushed. Default: none (images stay
	// in the local Docker engine, enough for local-container queues).
	Registry Registry `yaml:"registry"`
	// Builder says how job code becomes an image. Default: see Builder.
	Builder Builder `yaml:"builder"`

	// Entity is W&B's team or user name. Accepted so W&B files load
	// unchanged; Slipway records it as a label only. Default "".
	Entity string `yaml:"entity"`
	// BaseURL is W&B's API address. Accepted and ignored: Slipway's server is
	// Server. Default "".
	BaseURL string `yaml:"base_url"`
	// MaxSchedulers is W&B's cap on sweep schedulers; -1 is unlimited.
	// Accepted; Slipway runs no sweep schedulers. Default 1.
	MaxSchedulers int `yaml:"max_schedulers"`
	// SecureMode refuses jobs that override the queue's image or entrypoint.
	// Default false.
	SecureMode bool `yaml:"secure_mode"`
	// Verbosity is 0 (default), 1 (verbose) or 2 (very verbose).
	Verbosity int `yaml:"verbosity"`
	// StoppedRunTimeout is how many seconds a stopped job gets to end
	// before it is forcibly ended. Default 60.
	StoppedRunTimeout int `yaml:"stopped_run_timeout"`

	// lines maps a key's path to its line in the source, for Validate.
	lines map[string]int
}

// Environment is the cloud the agent acts in. Credentials always come from
// the provider's standard chain (for AWS: env vars, profile, SSO, IMDS).
type Environment struct {
	// Type is aws, gcp, azure or local. Default aws when Region or Profile is
	// set or the registry is ECR, else local.
	Type string `yaml:"type"`
	// Region is the cloud region, e.g. us-east-2. Default "": the standard
	// chain's (AWS_REGION, the profile's region).
	Region string `yaml:"region"`
	// Profile is the AWS shared-config profile. Default "": the standard chain's.
	Profile string `yaml:"profile"`
	// Project is the GCP project (type gcp only). Default "".
	Project string `yaml:"project"`
}

// Registry is where images are pushed and pulled.
type Registry struct {
	// Type is ecr, oci (any plain OCI registry), acr or gcr (treated as
	// plain OCI registries). Default ecr when URI is an ECR address or only
	// Repository is set, oci when URI is set, else "" (no registry).
	Type string `yaml:"type"`
	// URI is the image repository without a tag:
	// <account>.dkr.ecr.<region>.amazonaws.com/<repo> for ECR, host[:port]/path
	// otherwise. Default "": for ECR, built from the caller's account, the
	// region and Repository.
	URI string `yaml:"uri"`
	// Repository is the ECR repository name, used when URI is empty.
	// Default "".
	Repository string `yaml:"repository"`
}

// Builder says how the agent turns a job's code into an image.
type Builder struct {
	// Type is auto, docker, kaniko, noop (prebuilt images only) or oci
	// (append the code as a layer, no daemon). Default auto: oci where the
	// job fits it, else docker.
	Type string `yaml:"type"`
	// Destination is the image repository (no tag) built images go to; it
	// overrides the registry block. Default "": the registry's.
	Destination string `yaml:"destination"`
	// Platform is linux/amd64 or linux/arm64. Default linux/amd64.
	Platform string `yaml:"platform"`
	// BaseImage is the image job code is built onto. Default "": the
	// builder's own choice.
	BaseImage string `yaml:"base-image"`
	// BuildContextStore is the s3://bucket/prefix kaniko reads build
	// contexts from; required for kaniko. Default "".
	BuildContextStore string `yaml:"build-context-store"`
	// BuildJobName is the name prefix of kaniko build jobs.
	// Default "slipway-build".
	BuildJobName string `yaml:"build-job-name"`
	// SecretName and SecretKey name the Kubernetes secret (and its key)
	// holding registry credentials for kaniko; both or neither. Default "".
	SecretName string `yaml:"secret-name"`
	SecretKey  string `yaml:"secret-key"`
	// KanikoImage is the kaniko executor image. Default "": the kaniko
	// builder's pinned one.
	KanikoImage string `yaml:"kaniko-image"`
}

// LoadAgent reads, decodes, defaults and validates the agent config at path.
func LoadAgent(path string) (*Agent, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading agent config: %w", err)
	}
	a, err := ParseAgent(b)
	if err != nil {
		return nil, fmt.Errorf("loading agent config %s: %w", path, err)
	}
	a = a.WithDefaults()
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("loading agent config %s: %w", path, err)
	}
	return a, nil
}

// ParseAgent decodes an agent config strictly: an unknown key or a value of
// the wrong kind is an error naming its path and line. It neither defaults
// nor validates values: call WithDefaults, then Validate.
func ParseAgent(b []byte) (*Agent, error) {
	a := &Agent{}
	lines, errs := decodeYAML(b, a)
	if err := errs.err(); err != nil {
		return nil, err
	}
	a.lines = lines
	return a, nil
}

// ecrURI matches an ECR repository address, with an optional scheme and tag.
var ecrURI = regexp.MustCompile(`^(?:https://)?([0-9]{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/([a-z0-9._/-]+?)(?::([^/]*))?$`)

// WithDefaults returns a copy of a with every unset field at its default.
func (a *Agent) WithDefaults() *Agent {
	c := *a
	c.Queues = slices.Clone(a.Queues)
	if c.MaxJobs == 0 {
		c.MaxJobs = 1
	}
	if c.MaxSchedulers == 0 {
		c.MaxSchedulers = 1
	}
	if c.StoppedRunTimeout == 0 {
		c.StoppedRunTimeout = 60
	}
	r := &c.Registry
	if r.Type == "" {
		switch {
		case ecrURI.MatchString(r.URI), r.URI == "" && r.Repository != "":
			r.Type = "ecr"
		case r.URI != "":
			r.Type = "oci"
		}
	}
	e := &c.Environment
	if e.Type == "" {
		if e.Region != "" || e.Profile != "" || r.Type == "ecr" {
			e.Type = "aws"
		} else {
			e.Type = "local"
		}
	}
	bl := &c.Builder
	if bl.Type == "" {
		bl.Type = "auto"
	}
	if bl.Platform == "" {
		bl.Platform = "linux/amd64"
	}
	if bl.BuildJobName == "" {
		bl.BuildJobName = "slipway-build"
	}
	return &c
}

// Validate reports every invalid value at once, each naming its key and
// what was expected. The error wraps job.ErrInvalid.
func (a *Agent) Validate() error {
	var errs Errors
	bad := func(path, format string, args ...any) {
		errs = append(errs, FieldError{Path: path, Line: a.lines[path], Msg: fmt.Sprintf(format, args...)})
	}
	oneOf := func(path, v string, allowed []string) {
		if !slices.Contains(allowed, v) {
			bad(path, "%q: want one of %s%s", v, strings.Join(allowed, ", "), didYouMean(v, allowed))
		}
	}

	if u, err := url.Parse(a.Server); a.Server != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
		bad("server", "%q: want an http:// or https:// URL", a.Server)
	}
	if len(a.Queues) == 0 {
		bad("queues", "want at least one queue name")
	}
	seen := map[string]bool{}
	for i, q := range a.Queues {
		p := indexPath("queues", i)
		if err := job.ValidateQueueName(q); err != nil {
			bad(p, "%q: want 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", q)
		} else if seen[q] {
			bad(p, "%q: listed twice", q)
		}
		seen[q] = true
	}
	if a.MaxJobs < -1 || a.MaxJobs == 0 {
		bad("max_jobs", "%d: want -1 (unlimited) or at least 1", a.MaxJobs)
	}
	if a.MaxSchedulers < -1 || a.MaxSchedulers == 0 {
		bad("max_schedulers", "%d: want -1 (unlimited) or at least 1", a.MaxSchedulers)
	}
	if a.Verbosity < 0 || a.Verbosity > 2 {
		bad("verbosity", "%d: want 0, 1 or 2", a.Verbosity)
	}
	if a.StoppedRunTimeout < 1 {
		bad("stopped_run_timeout", "%d: want at least 1 (seconds)", a.StoppedRunTimeout)
	}

	e := a.Environment
	oneOf("environment.type", e.Type, EnvironmentTypes)
	if e.Region != "" && !awsRegion.MatchString(e.Region) && e.Type == "aws" {
		bad("environment.region", "%q: want an AWS region such as us-east-2", e.Region)
	}
	if e.Project != "" && e.Type != "gcp" {
		bad("environment.project", "only applies to environment type gcp")
	}
	if e.Profile != "" && e.Type != "aws" {
		bad("environment.profile", "only applies to environment type aws")
	}

	r := a.Registry
	if r.Type != "" {
		oneOf("registry.type", r.Type, RegistryTypes)
	}
	switch r.Type {
	case "ecr":
		if r.URI == "" && r.Repository == "" {
			bad("registry", "ecr registry: want uri (<account>.dkr.ecr.<region>.amazonaws.com/<repo>) or repository")
		}
		if r.URI != "" {
			m := ecrURI.FindStringSubmatch(r.URI)
			switch {
			case m == nil:
				bad("registry.uri", "%q: want <account>.dkr.ecr.<region>.amazonaws.com/<repository>", r.URI)
			case m[4] != "":
				bad("registry.uri", "%q: want no tag (:%s): Slipway tags each image with its content digest", r.URI, m[4])
			case r.Repository != "" && r.Repository != m[3]:
				bad("registry.repository", "%q: differs from the repository %q in registry.uri", r.Repository, m[3])
			case e.Region != "" && e.Region != m[2]:
				bad("registry.uri", "%q: region %s differs from environment.region %s", r.URI, m[2], e.Region)
			}
		}
		if r.Repository != "" && !ecrRepoName.MatchString(r.Repository) {
			bad("registry.repository", "%q: want an ECR repository name (lowercase letters, digits, '.', '_', '-', '/')", r.Repository)
		}
		if e.Type != "aws" {
			bad("registry.type", "ecr needs environment type aws, got %s", e.Type)
		}
	case "oci", "acr", "gcr":
		if r.URI == "" {
			bad("registry.uri", "want the image repository, host[:port]/path")
		} else if msg := checkImageRepo(r.URI); msg != "" {
			bad("registry.uri", "%q: %s", r.URI, msg)
		}
		if r.Repository != "" {
			bad("registry.repository", "only applies to ecr registries; put the repository in registry.uri")
		}
	case "":
		if r.URI != "" || r.Repository != "" {
			bad("registry.type", "want one of %s", strings.Join(RegistryTypes, ", "))
		}
	}

	b := a.Builder
	oneOf("builder.type", b.Type, BuilderTypes)
	oneOf("builder.platform", b.Platform, Platforms)
	if b.Destination != "" {
		if msg := checkImageRepo(b.Destination); msg != "" {
			bad("builder.destination", "%q: %s", b.Destination, msg)
		}
	}
	hasDest := b.Destination != "" || r.Type != ""
	switch b.Type {
	case "kaniko":
		if b.BuildContextStore == "" {
			bad("builder.build-context-store", "kaniko builder: want s3://bucket/prefix")
		}
		if !hasDest {
			bad("builder.destination", "kaniko builder: want a registry block or builder.destination to push to")
		}
	case "oci":
		if !hasDest {
			bad("builder.destination", "oci builder: want a registry block or builder.destination to push to")
		}
	}
	if b.BuildContextStore != "" && !s3Prefix.MatchString(b.BuildContextStore) {
		bad("builder.build-context-store", "%q: want s3://bucket/prefix (Slipway's kaniko builder reads build contexts from S3)", b.BuildContextStore)
	}
	if (b.SecretName == "") != (b.SecretKey == "") {
		if b.SecretName == "" {
			bad("builder.secret-name", "want it set together with builder.secret-key")
		} else {
			bad("builder.secret-key", "want it set together with builder.secret-name")
		}
	}
	if b.BuildJobName != "" && !k8sName.MatchString(b.BuildJobName) {
		bad("builder.build-job-name", "%q: want at most 52 lowercase letters, digits or '-', starting and ending with a letter or digit", b.BuildJobName)
	}
	return errs.err()
}

var (
	awsRegion   = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
	ecrRepoName = regexp.MustCompile(`^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$`)
	s3Prefix    = regexp.MustCompile(`^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$`)
	k8sName     = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,50}[a-z0-9])?$`)
	imageRepo   = regexp.MustCompile(`^[a-zA-Z0-9.-]+(:[0-9]+)?(/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)+$`)
)

// checkImageRepo checks an image repository reference without tag or
// digest, returning what is wrong or "".
func checkImageRepo(s string) string {
	s = strings.TrimPrefix(s, "https://")
	if i := strings.LastIndex(s, "@"); i >= 0 {
		return "want no digest: Slipway tags each image with its content digest"
	}
	if i := strings.LastIndex(s, ":"); i > strings.LastIndex(s, "/") {
		return "want no tag: Slipway tags each image with its content digest"
	}
	if !imageRepo.MatchString(s) {
		return "want an image repository, host[:port]/path in lowercase"
	}
	return ""
}

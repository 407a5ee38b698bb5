package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/job"
)

// designAgent is the agent config from DESIGN.md, as users write it.
const designAgent = `
environment: {type: aws, region: us-east-2}        # credentials: AWS SDK default chain
registry:    {type: ecr, repository: my-repo}       # also uri: <acct>.dkr.ecr.<region>.amazonaws.com/<repo>
builder:     {type: docker}                         # or: {type: kaniko, build-context-store: s3://bucket/prefix}
queues: [sagemaker-queue]
max_jobs: 4
`

func loadAgent(t *testing.T, src string) (*Agent, error) {
	t.Helper()
	a, err := ParseAgent([]byte(src))
	if err != nil {
		return nil, err
	}
	a = a.WithDefaults()
	return a, a.Validate()
}

func TestAgentDesignConfig(t *testing.T) {
	t.Parallel()
	a, err := loadAgent(t, designAgent)
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	want := Agent{
		Queues:            []string{"sagemaker-queue"},
		MaxJobs:           4,
		MaxSchedulers:     1,
		StoppedRunTimeout: 60,
		Environment:       Environment{Type: "aws", Region: "us-east-2"},
		Registry:          Registry{Type: "ecr", Repository: "my-repo"},
		Builder:           Builder{Type: "docker", Platform: "linux/amd64", BuildJobName: "slipway-build"},
	}
	a.lines = nil
	if !agentEqual(*a, want) {
		t.Errorf("got %+v, want %+v", *a, want)
	}
}

func agentEqual(a, b Agent) bool {
	return strings.Join(a.Queues, ",") == strings.Join(b.Queues, ",") &&
		a.Server == b.Server && a.MaxJobs == b.MaxJobs && a.MaxSchedulers == b.MaxSchedulers &&
		a.StoppedRunTimeout == b.StoppedRunTimeout && a.Environment == b.Environment &&
		a.Registry == b.Registry && a.Builder == b.Builder && a.Entity == b.Entity &&
		a.BaseURL == b.BaseURL && a.SecureMode == b.SecureMode && a.Verbosity == b.Verbosity
}

// A W&B launch-config.yaml with every key it accepts loads unchanged.
func TestAgentWandbKeys(t *testing.T) {
	t.Parallel()
	src := `
base_url: https://api.wandb.ai
entity: my-team
queues:
  - sagemaker-queue
  - cpu
max_jobs: -1
max_schedulers: 2
secure_mode: true
verbosity: 1
stopped_run_timeout: 30
environment:
  type: aws
  region: us-east-2
  profile: ml
registry:
  type: ecr
  uri: 123456789012.dkr.ecr.us-east-2.amazonaws.com/my-repo
builder:
  type: kaniko
  destination: 123456789012.dkr.ecr.us-east-2.amazonaws.com/built
  platform: linux/arm64
  base-image: python:3.11-slim
  build-context-store: s3://bucket/prefix
  build-job-name: my-build
  secret-name: regcred
  secret-key: config.json
  kaniko-image: executor:v1
server: https://slipway.example.com
`
	a, err := loadAgent(t, src)
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	if a.MaxJobs != -1 || a.Builder.BuildContextStore != "s3://bucket/prefix" || a.Environment.Profile != "ml" ||
		a.Entity != "my-team" || !a.SecureMode || a.Builder.BaseImage != "python:3.11-slim" || a.StoppedRunTimeout != 30 {
		t.Errorf("got %+v, want the values written", *a)
	}
}

func TestAgentDefaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, src string
		check     func(a *Agent) bool
	}{
		{"max_jobs 0 means 1", "queues: [q]\nmax_jobs: 0", func(a *Agent) bool { return a.MaxJobs == 1 }},
		{"unset max_jobs is 1", "queues: [q]", func(a *Agent) bool { return a.MaxJobs == 1 }},
		{"builder auto", "queues: [q]", func(a *Agent) bool { return a.Builder.Type == "auto" }},
		{"local environment", "queues: [q]", func(a *Agent) bool { return a.Environment.Type == "local" }},
		{"aws from region", "queues: [q]\nenvironment: {region: eu-west-1}", func(a *Agent) bool { return a.Environment.Type == "aws" }},
		{"ecr from uri", "queues: [q]\nregistry: {uri: 123456789012.dkr.ecr.us-east-2.amazonaws.com/r}",
			func(a *Agent) bool { return a.Registry.Type == "ecr" && a.Environment.Type == "aws" }},
		{"ecr from repository", "queues: [q]\nregistry: {repository: r}", func(a *Agent) bool { return a.Registry.Type == "ecr" }},
		{"oci from uri", "queues: [q]\nregistry: {uri: localhost:5000/slipway}", func(a *Agent) bool { return a.Registry.Type == "oci" }},
		{"null block", "queues: [q]\nbuilder:\n", func(a *Agent) bool { return a.Builder.Type == "auto" }},
		{"merge key", "queues: [q]\nbase: &b {type: docker}\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, err := loadAgent(t, tt.src)
			if tt.check == nil {
				if err == nil {
					t.Fatalf("got no error, want one")
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if !tt.check(a) {
				t.Errorf("got %+v, want the default", *a)
			}
		})
	}
}

func TestAgentYAMLFeatures(t *testing.T) {
	t.Parallel()
	src := "defaults: &d {type: docker, platform: linux/arm64}\n"
	if _, err := ParseAgent([]byte(src)); err == nil {
		t.Fatal("got no error for an unknown top-level anchor holder, want one")
	}
	src = "queues: &qs [a, b]\nbuilder:\n  <<: {type: docker}\n  platform: linux/arm64\n"
	a, err := loadAgent(t, src)
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	if a.Builder.Type != "docker" || a.Builder.Platform != "linux/arm64" || len(a.Queues) != 2 {
		t.Errorf("got %+v, want merged builder and two queues", *a)
	}
}

// Every rule, with its exact message.
func TestAgentErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, src string
		want      string
	}{
		{"unknown key with suggestion", "queues: [q]\nbuilder:\n  type: docker\n  destnation: x/y",
			"line 4: builder.destnation: unknown key (did you mean destination?)"},
		{"underscore for dash", "queues: [q]\nbuilder: {build_context_store: s3://b/p}",
			"line 2: builder.build_context_store: unknown key (did you mean build-context-store?)"},
		{"unknown key without suggestion", "queues: [q]\nfrobnicate: 1", "line 2: frobnicate: unknown key"},
		{"duplicate key", "queues: [q]\nmax_jobs: 1\nmax_jobs: 2", "line 3: max_jobs: duplicate key (first on line 2)"},
		{"int wanted", "queues: [q]\nmax_jobs: four", `line 2: max_jobs: got string "four", want an integer`},
		{"float for int", "queues: [q]\nmax_jobs: 1.5", `line 2: max_jobs: got number 1.5, want an integer`},
		{"bool wanted", "queues: [q]\nsecure_mode: maybe", `line 2: secure_mode: got string "maybe", want true or false`},
		{"list wanted", "queues: q", `line 1: queues: got string "q", want a list`},
		{"mapping wanted", "queues: [q]\nbuilder: docker", `line 2: builder: got string "docker", want a mapping`},
		{"string wanted", "queues: [q]\nserver: {a: b}", `line 2: server: got a mapping, want a string`},
		{"list element", "queues: [q, [x]]", `line 1: queues[1]: got a list, want a string`},
		{"not a mapping at top", "- a\n- b", `line 1: got a list, want a mapping`},
		{"bad yaml", "queues: [q", "reading YAML: line 1: did not find expected ',' or ']'"},
		{"no queues", "max_jobs: 2", "queues: want at least one queue name"},
		{"bad queue name", "queues: ['-x']",
			`line 1: queues[0]: "-x": want 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit`},
		{"queue twice", "queues: [a, a]", `line 1: queues[1]: "a": listed twice`},
		{"max_jobs too low", "queues: [q]\nmax_jobs: -2", "line 2: max_jobs: -2: want -1 (unlimited) or at least 1"},
		{"max_schedulers too low", "queues: [q]\nmax_schedulers: -5", "line 2: max_schedulers: -5: want -1 (unlimited) or at least 1"},
		{"verbosity", "queues: [q]\nverbosity: 3", "line 2: verbosity: 3: want 0, 1 or 2"},
		{"stopped_run_timeout", "queues: [q]\nstopped_run_timeout: -1", "line 2: stopped_run_timeout: -1: want at least 1 (seconds)"},
		{"server scheme", "queues: [q]\nserver: ftp://x", `line 2: server: "ftp://x": want an http:// or https:// URL`},
		{"environment type", "queues: [q]\nenvironment: {type: awz}",
			`environment.type: "awz": want one of aws, gcp, azure, local (did you mean aws?)`},
		{"region", "queues: [q]\nenvironment: {type: aws, region: Ohio}", `environment.region: "Ohio": want an AWS region such as us-east-2`},
		{"project outside gcp", "queues: [q]\nenvironment: {type: aws, project: p}", "environment.project: only applies to environment type gcp"},
		{"profile outside aws", "queues: [q]\nenvironment: {type: gcp, profile: p}", "environment.profile: only applies to environment type aws"},
		{"registry type", "queues: [q]\nregistry: {type: ecs, uri: x/y}",
			`registry.type: "ecs": want one of ecr, oci, acr, gcr (did you mean ecr?)`},
		{"ecr empty", "queues: [q]\nregistry: {type: ecr}",
			"registry: ecr registry: want uri (<account>.dkr.ecr.<region>.amazonaws.com/<repo>) or repository"},
		{"ecr bad uri", "queues: [q]\nregistry: {type: ecr, uri: 12.dkr.ecr.us-east-2.amazonaws.com/r}",
			`registry.uri: "12.dkr.ecr.us-east-2.amazonaws.com/r": want <account>.dkr.ecr.<region>.amazonaws.com/<repository>`},
		{"ecr tag", "queues: [q]\nregistry: {uri: 123456789012.dkr.ecr.us-east-2.amazonaws.com/r:latest}",
			`registry.uri: "123456789012.dkr.ecr.us-east-2.amazonaws.com/r:latest": want no tag (:latest): Slipway tags each image with its content digest`},
		{"ecr repo mismatch", "queues: [q]\nregistry: {uri: 123456789012.dkr.ecr.us-east-2.amazonaws.com/r, repository: s}",
			`registry.repository: "s": differs from the repository "r" in registry.uri`},
		{"ecr region mismatch", "queues: [q]\nenvironment: {region: us-west-2}\nregistry: {uri: 123456789012.dkr.ecr.us-east-2.amazonaws.com/r}",
			`registry.uri: "123456789012.dkr.ecr.us-east-2.amazonaws.com/r": region us-east-2 differs from environment.region us-west-2`},
		{"ecr repo name", "queues: [q]\nregistry: {type: ecr, repository: My_Repo}",
			`registry.repository: "My_Repo": want an ECR repository name (lowercase letters, digits, '.', '_', '-', '/')`},
		{"ecr outside aws", "queues: [q]\nenvironment: {type: local}\nregistry: {type: ecr, repository: r}",
			"registry.type: ecr needs environment type aws, got local"},
		{"oci without uri", "queues: [q]\nregistry: {type: oci}", "registry.uri: want the image repository, host[:port]/path"},
		{"oci with repository", "queues: [q]\nregistry: {type: oci, uri: localhost:5000/x, repository: r}",
			"registry.repository: only applies to ecr registries; put the repository in registry.uri"},
		{"oci digest", "queues: [q]\nregistry: {type: oci, uri: 'localhost:5000/x@sha256:00'}",
			`registry.uri: "localhost:5000/x@sha256:00": want no digest: Slipway tags each image with its content digest`},
		{"builder type", "queues: [q]\nbuilder: {type: dokcer}",
			`builder.type: "dokcer": want one of auto, docker, kaniko, noop, oci (did you mean docker?)`},
		{"platform", "queues: [q]\nbuilder: {platform: linux/386}",
			`builder.platform: "linux/386": want one of linux/amd64, linux/arm64`},
		{"destination tag", "queues: [q]\nbuilder: {destination: 'localhost:5000/x:v1'}",
			`builder.destination: "localhost:5000/x:v1": want no tag: Slipway tags each image with its content digest`},
		{"destination case", "queues: [q]\nbuilder: {destination: localhost/X}",
			`builder.destination: "localhost/X": want an image repository, host[:port]/path in lowercase`},
		{"kaniko without store", "queues: [q]\nbuilder: {type: kaniko, destination: localhost/x}",
			"builder.build-context-store: kaniko builder: want s3://bucket/prefix"},
		{"kaniko without registry", "queues: [q]\nbuilder: {type: kaniko, build-context-store: s3://bucket/p}",
			"builder.destination: kaniko builder: want a registry block or builder.destination to push to"},
		{"oci without registry", "queues: [q]\nbuilder: {type: oci}",
			"builder.destination: oci builder: want a registry block or builder.destination to push to"},
		{"store not s3", "queues: [q]\nbuilder: {build-context-store: gs://bucket/p}",
			`builder.build-context-store: "gs://bucket/p": want s3://bucket/prefix (Slipway's kaniko builder reads build contexts from S3)`},
		{"secret name alone", "queues: [q]\nbuilder: {secret-name: s}", "builder.secret-key: want it set together with builder.secret-name"},
		{"secret key alone", "queues: [q]\nbuilder: {secret-key: k}", "builder.secret-name: want it set together with builder.secret-key"},
		{"build job name", "queues: [q]\nbuilder: {build-job-name: Build_Job}",
			`builder.build-job-name: "Build_Job": want at most 52 lowercase letters, digits or '-', starting and ending with a letter or digit`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := loadAgent(t, tt.src)
			if err == nil {
				t.Fatalf("got no error, want %q", tt.want)
			}
			if !errors.Is(err, job.ErrInvalid) {
				t.Errorf("got error %v not wrapping job.ErrInvalid", err)
			}
			if got := err.Error(); !strings.Contains(got+"\n", tt.want+"\n") {
				t.Errorf("got %q, want a line %q", got, tt.want)
			}
		})
	}
}

// Every problem is reported at once, sorted by path.
func TestAgentAllErrorsSorted(t *testing.T) {
	t.Parallel()
	src := "verbosity: 9\nbuilder: {type: x, destnation: y}\nmax_jobs: -3\nqueues: [a, a]\n"
	_, err := ParseAgent([]byte(src))
	if got, want := err.Error(), "line 2: builder.destnation: unknown key (did you mean destination?)"; got != want {
		t.Errorf("parse: got %q, want %q", got, want)
	}
	src = "verbosity: 9\nbuilder: {type: x}\nmax_jobs: -3\nqueues: [a, a]\n"
	_, err = loadAgent(t, src)
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("got %T, want Errors", err)
	}
	var paths []string
	for _, e := range errs {
		paths = append(paths, e.Path)
	}
	if got, want := strings.Join(paths, " "), "builder.type max_jobs queues[1] verbosity"; got != want {
		t.Errorf("got paths %q, want %q", got, want)
	}
}

func TestLoadAgent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(good, []byte(designAgent), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := LoadAgent(good)
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	if a.MaxJobs != 4 || a.Server != "" {
		t.Errorf("got %+v, want max_jobs 4 and the default server", *a)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("queues: [q]\nmax_job: 2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = LoadAgent(bad)
	want := "loading agent config " + bad + ": line 2: max_job: unknown key (did you mean max_jobs?)"
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
	if !errors.Is(err, job.ErrInvalid) {
		t.Errorf("got %v, want it to wrap job.ErrInvalid", err)
	}
	if _, err := LoadAgent(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("got %v, want os.ErrNotExist", err)
	}
}

func TestEmptyAgentFile(t *testing.T) {
	t.Parallel()
	a, err := ParseAgent([]byte("# nothing yet\n"))
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	a.Queues = []string{"default"} // as the CLI does from --queue
	if err := a.WithDefaults().Validate(); err != nil {
		t.Errorf("got error %v, want none", err)
	}
}

func TestWithDefaultsCopies(t *testing.T) {
	t.Parallel()
	a := &Agent{Queues: []string{"q"}}
	d := a.WithDefaults()
	d.Queues[0] = "changed"
	if a.Queues[0] != "q" || a.MaxJobs != 0 {
		t.Errorf("got %+v, want the original untouched", *a)
	}
}

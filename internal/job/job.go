package job

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Priority orders jobs within one queue: critical before high before medium
// before low, first in first out within one priority.
type Priority int

// The priorities, lowest first. The zero value is Medium, the default.
const (
	Low Priority = iota - 1
	Medium
	High
	Critical
)

var priorityNames = []string{"low", "medium", "high", "critical"}

// ParsePriority returns the Priority named s; the empty string is Medium.
func ParsePriority(s string) (Priority, error) {
	if s == "" {
		return Medium, nil
	}
	for i, n := range priorityNames {
		if strings.EqualFold(n, s) {
			return Priority(i - 1), nil
		}
	}
	return 0, fmt.Errorf("%w: priority %q: want one of low, medium, high, critical", ErrInvalid, s)
}

func (p Priority) String() string {
	if p < Low || p > Critical {
		return fmt.Sprintf("priority(%d)", int(p))
	}
	return priorityNames[p+1]
}

// MarshalText writes the priority by name.
func (p Priority) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText reads a priority by name.
func (p *Priority) UnmarshalText(b []byte) error {
	v, err := ParsePriority(string(b))
	*p = v
	return err
}

// Resource is where a queue's jobs run.
type Resource string

// The resources a queue can target.
const (
	LocalProcess   Resource = "local-process"
	LocalContainer Resource = "local-container"
	SageMaker      Resource = "sagemaker"
)

// Resources lists every resource.
var Resources = []Resource{LocalProcess, LocalContainer, SageMaker}

// ParseResource returns the Resource named s.
func ParseResource(s string) (Resource, error) {
	for _, r := range Resources {
		if string(r) == s {
			return r, nil
		}
	}
	return "", fmt.Errorf("%w: resource %q: want one of local-process, local-container, sagemaker", ErrInvalid, s)
}

var queueName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)

// ValidateQueueName checks that a queue name is usable in URLs and names.
func ValidateQueueName(name string) error {
	if !queueName.MatchString(name) {
		return fmt.Errorf("%w: queue name %q: want 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", ErrInvalid, name)
	}
	return nil
}

// Queue is a named line of jobs bound to one resource.
type Queue struct {
	Name     string          `json:"name"`
	Resource Resource        `json:"resource"`
	Config   json.RawMessage `json:"config,omitempty"` // resource-specific; a CreateTrainingJob body for sagemaker
	// Vars declares the {{name}} template variables of Config, each as
	// "name:type[:min:max|:enum=a,b][=default]"; jobs fill them at launch.
	Vars []string `json:"vars,omitempty"`
	// MaxRunning caps how many of the queue's jobs are held by agents at
	// once (claimed up to running), across every agent; 0 means no cap.
	MaxRunning int `json:"max_running,omitempty"`
	// Policy is what the queue's jobs may ask for (roles, images, instance
	// types and counts, runtime, spot); nil allows anything.
	Policy *Policy `json:"policy,omitempty"`
	// Missing names the config fields still to fill before the queue takes
	// jobs; computed on reads, never stored.
	Missing []string `json:"missing,omitempty"`
	// Unfinished counts the queue's jobs not yet in a terminal state; filled on reads.
	Unfinished int       `json:"unfinished"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// Spec is what the user asked to run.
type Spec struct {
	Image      string            `json:"image,omitempty"`
	Entrypoint []string          `json:"entrypoint,omitempty"`
	Args       []string          `json:"args,omitempty"`
	Env        map[string]string `json:"env,omitempty"`
	RunConfig  json.RawMessage   `json:"run_config,omitempty"` // any JSON object, handed to the job as a file and an env var
	// CodeDigest is "sha256:<hex>" of the gzipped tarball of the job's code
	// (from launch --dir), stored beside the job; empty when there is none.
	CodeDigest string `json:"code_digest,omitempty"`
	CodeSize   int64  `json:"code_size,omitempty"`
	// Git is code the agent fetches itself (launch --git); nil when none.
	Git *GitSource `json:"git,omitempty"`
	// Vars fills the queue's {{name}} template variables (launch --set-var).
	Vars map[string]string `json:"vars,omitempty"`
	// ResourceArgs is deep-merged over the queue's config for this job only
	// (launch --resource-args); for sagemaker, part of a CreateTrainingJob body.
	ResourceArgs json.RawMessage `json:"resource_args,omitempty"`
	// Secrets are the job's secrets, by reference (launch --secret); a value
	// given at launch is sealed by the server, never kept in plaintext.
	Secrets []Secret `json:"secrets,omitempty"`
}

// HasCode reports whether the job brings code: sent with it, or in git.
func (s Spec) HasCode() bool { return s.CodeDigest != "" || s.Git != nil }

// Validate checks what can be checked without knowing the queue.
func (s Spec) Validate() error {
	if s.Image == "" && !s.HasCode() && len(s.Entrypoint) == 0 {
		return fmt.Errorf("%w: job needs an image, code (--dir, --git) or an entrypoint", ErrInvalid)
	}
	if s.Git != nil {
		if s.CodeDigest != "" {
			return fmt.Errorf("%w: git: a job takes code from --dir or --git, not both", ErrInvalid)
		}
		if err := s.Git.Validate(); err != nil {
			return err
		}
	}
	for k := range s.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("%w: env: key %q: want a non-empty name without '='", ErrInvalid, k)
		}
	}
	seen := map[string]bool{}
	for _, sec := range s.Secrets {
		if err := sec.Validate(); err != nil {
			return err
		}
		if seen[sec.Name] {
			return fmt.Errorf("%w: secrets: %s given twice", ErrInvalid, sec.Name)
		}
		seen[sec.Name] = true
	}
	for name, raw := range map[string]json.RawMessage{"run_config": s.RunConfig, "resource_args": s.ResourceArgs} {
		if len(raw) == 0 {
			continue
		}
		var obj map[string]any
		if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
			return fmt.Errorf("%w: %s: want a JSON object", ErrInvalid, name)
		}
	}
	return nil
}

// Lease is an agent's hold on a job: it expires unless renewed, and its token
// fences out updates from any earlier holder.
type Lease struct {
	Agent     string    `json:"agent"`
	Token     int64     `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	// TokenID is the id of the API token that claimed the job, when the
	// server runs with tokens: only that token (or an admin one) may act
	// under the lease. Empty for a claim made without tokens.
	TokenID string `json:"token_id,omitempty"`
}

// Job is one training run and everything known about it.
type Job struct {
	ID         string   `json:"id"`
	Queue      string   `json:"queue"`
	State      State    `json:"state"`
	Reason     string   `json:"reason"`
	Attempt    int      `json:"attempt"`
	Priority   Priority `json:"priority"`
	Image      string   `json:"image"`
	Spec       Spec     `json:"spec"`
	ExternalID string   `json:"external_id"` // the runner's name for the run: TrainingJobName, container or process id
	// Outputs are what the run left behind: the model artifact URI,
	// billable seconds, final metrics ("metric:<name>").
	Outputs map[string]string `json:"outputs,omitempty"`
	Lease   *Lease            `json:"lease,omitempty"`
	// IdempotencyKey, when set at enqueue, names the request that created
	// the job: enqueueing again with the same key returns this job.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// CancelRequested is set when a user cancels a held job; its agent stops it.
	CancelRequested bool      `json:"cancel_requested,omitempty"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
	Events          []Event   `json:"events,omitempty"`
}

// Event records one transition of a job: who moved it, when and why.
type Event struct {
	Seq     int64     `json:"seq"`
	JobID   string    `json:"job_id"`
	At      time.Time `json:"at"`
	From    State     `json:"from,omitempty"`
	To      State     `json:"to"`
	Reason  string    `json:"reason"`
	Actor   string    `json:"actor"` // "user", "server", or the agent's id
	Attempt int       `json:"attempt"`
}

// LogLine is one line of a job's output, kept per attempt.
type LogLine struct {
	Seq     int64     `json:"seq"`
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	Stream  string    `json:"stream"` // stdout, stderr, or slipway for the agent's own notes
	Text    string    `json:"text"`
}

// Agent is a registered agent process.
type Agent struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Queues   []string  `json:"queues"`
	MaxJobs  int       `json:"max_jobs"`
	Started  time.Time `json:"started_at"`
	LastSeen time.Time `json:"last_seen_at"`
}

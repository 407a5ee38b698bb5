// Package runner is the seam between the agent and the place a job runs: a
// local process, a local container, or a SageMaker training job. Each lives
// in its own subpackage and passes the suite in runner/runnertest.
package runner

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/slipway-ml/slipway/internal/job"
)

// Runner starts a job, follows it to its end, and stops it on request.
//
// The external id that Start returns is the runner's own name for the run
// (a TrainingJobName, a container name, a process id). The agent stores it
// before it calls Wait, so that after an agent restart another Wait on the
// same id re-attaches to the run instead of starting it again.
type Runner interface {
	// Start launches t and returns its external id. Starting the same job and
	// attempt twice must not run it twice: a runner that finds the run
	// already there adopts it.
	Start(ctx context.Context, t Task) (externalID string, err error)
	// Wait blocks until the run ends, reporting its progress and output to
	// s, and returns how it ended. An error means the run's fate is unknown
	// (the runner could not ask), never that the job failed. When the runner
	// cannot re-attach to externalID, Wait returns ErrLost.
	Wait(ctx context.Context, t Task, externalID string, s Sink) (Result, error)
	// Stop asks the run to end; Wait then returns with job.Stopped.
	Stop(ctx context.Context, externalID string) error
}

// Task is one attempt of a job, as the agent hands it to a runner.
type Task struct {
	// Job is a pointer so that a Task is cheap to pass by value: an agent
	// following thousands of runs has a goroutine blocked in Wait for
	// each, and every copy on its stack counts.
	Job *job.Job
	// Name is a deterministic name for this job and attempt, valid as a
	// container name and a TrainingJobName.
	Name string
	// Code opens the job's code as a gzipped tarball; nil when it has none.
	Code func(ctx context.Context) (io.ReadCloser, error)
	// Secrets are the values of the job's sealed secrets by name, as the
	// claim gave them to the agent. A runner puts them inside the run (a
	// file under EnvSecretsDir) and never in a plaintext environment, a
	// request or a log. References (Job.Spec.Secrets) are not values.
	Secrets map[string]string
}

// TaskName is the deterministic name of a job's attempt, valid as a
// container name and as a SageMaker TrainingJobName
// (^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$).
func TaskName(j job.Job) string { return fmt.Sprintf("%s-a%d", j.ID, j.Attempt) }

// Sink receives what a run reports while the agent waits on it. Its methods
// may be called from several goroutines.
type Sink interface {
	// State reports that the run moved to starting or running.
	State(s job.State, reason string)
	// Log reports one line of output; stream is "stdout" or "stderr".
	Log(stream, line string)
}

// Result is how a run ended.
type Result struct {
	State  job.State // finished, failed, stopped or preempted
	Reason string    // why, in words a user can act on: the failure reason, the exit code
	// Outputs are what the run left behind, kept on the job: the model
	// artifact URI, billable seconds, final metrics. Nil when none.
	Outputs map[string]string
}

// ErrLost means the run cannot be found or followed any more, for instance a
// local process whose agent restarted.
var ErrLost = errors.New("run lost")

// Env holds the environment variables every runner gives the job.
const (
	EnvJobID         = "SLIPWAY_JOB_ID"
	EnvQueue         = "SLIPWAY_QUEUE"
	EnvAttempt       = "SLIPWAY_ATTEMPT"
	EnvRunConfig     = "SLIPWAY_RUN_CONFIG"      // the run config as JSON
	EnvRunConfigFile = "SLIPWAY_RUN_CONFIG_FILE" // a path to the same JSON
	// EnvSecretsDir is the folder holding one file per secret, named after
	// it, given to local runs that have secrets.
	EnvSecretsDir = "SLIPWAY_SECRETS_DIR"
	// EnvSecretRefPrefix and EnvSecretRefSuffix frame the variable that
	// passes a secret's reference (never its value) to a SageMaker job:
	// SLIPWAY_SECRET_<NAME>_REF=secretsmanager:ARN|ssm:/path, which the
	// container resolves with its execution role.
	EnvSecretRefPrefix = "SLIPWAY_SECRET_"
	EnvSecretRefSuffix = "_REF"
)

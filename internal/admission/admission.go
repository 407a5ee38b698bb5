// Package admission decides what a queue's config and a job must hold for
// their resource before the server accepts them, so that config errors
// surface when a queue is created or a job launched, not when an agent
// runs it at 3 a.m.
package admission

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/slipway-ml/slipway/internal/config"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/runner"
	"github.com/slipway-ml/slipway/internal/runner/sagemaker"
)

// Checker vets queues and jobs per resource. Its zero value is ready.
type Checker struct{}

// PlaceholderImage stands in, during the enqueue check, for the image a
// job's code will be built into.
const PlaceholderImage = "000000000000.dkr.ecr.us-east-1.amazonaws.com/slipway-build:pending"

// CheckQueue checks q's config and template variables and returns the
// queue to store; a sagemaker queue without a config gets the default body.
func (Checker) CheckQueue(q job.Queue) (job.Queue, error) {
	if err := q.Policy.Validate(); err != nil {
		return job.Queue{}, err
	}
	if q.Policy.IsZero() {
		q.Policy = nil
	}
	vars, err := config.ParseVars(q.Vars)
	if err != nil {
		return job.Queue{}, err
	}
	switch q.Resource {
	case job.SageMaker:
		if len(strings.TrimSpace(string(q.Config))) == 0 {
			q.Config = json.RawMessage(config.DefaultSageMakerQueue)
		}
		sm, errs := config.ValidateSageMakerQueue(q.Config)
		if len(errs) == 0 {
			errs = append(sm.Required(), sm.CheckVars(vars)...)
		}
		if len(errs) > 0 {
			return job.Queue{}, fmt.Errorf("queue %s config: %w", q.Name, errs)
		}
	default:
		if len(vars) > 0 {
			return job.Queue{}, fmt.Errorf("%w: vars: template variables are for sagemaker queue configs; %s queues have none", job.ErrInvalid, q.Resource)
		}
		if len(q.Config) > 0 {
			var obj map[string]any
			if err := json.Unmarshal(q.Config, &obj); err != nil || obj == nil {
				return job.Queue{}, fmt.Errorf("%w: config: want a JSON object", job.ErrInvalid)
			}
		}
	}
	return q, nil
}

// Missing names the config fields q still needs before it takes jobs.
func (Checker) Missing(q job.Queue) []string {
	if q.Resource != job.SageMaker {
		return nil
	}
	sm, errs := config.ValidateSageMakerQueue(q.Config)
	if len(errs) > 0 {
		return nil // refused at creation; nothing more to say here
	}
	return sm.Missing()
}

// CheckJob checks j against its queue: what the resource runs, for
// sagemaker the whole CreateTrainingJob request the job would send, and
// the queue's policy (see CheckPolicy).
func (c Checker) CheckJob(q job.Queue, j job.Job) error {
	if err := c.checkResource(q, j); err != nil {
		return err
	}
	return c.CheckPolicy(q, j)
}

func (c Checker) checkResource(q job.Queue, j job.Job) error {
	switch q.Resource {
	case job.LocalProcess:
		if len(j.Spec.Entrypoint) == 0 {
			return fmt.Errorf("%w: entrypoint: a local-process queue runs a command; give one with --entrypoint", job.ErrInvalid)
		}
	case job.LocalContainer:
		if j.Spec.Image == "" && !j.Spec.HasCode() {
			return fmt.Errorf("%w: image: a local-container queue runs an image; give one with --image, or code with a Dockerfile with --dir", job.ErrInvalid)
		}
	case job.SageMaker:
		return c.checkSageMaker(q, j)
	}
	if len(j.Spec.Vars) > 0 || len(j.Spec.ResourceArgs) > 0 {
		return fmt.Errorf("%w: vars, resource_args: only sagemaker queues take them", job.ErrInvalid)
	}
	return nil
}

func (c Checker) checkSageMaker(q job.Queue, j job.Job) error {
	if missing := c.Missing(q); len(missing) > 0 {
		return fmt.Errorf("%w: queue %s is not ready: fill %s in its config (slipway queue update %s --config FILE)",
			job.ErrInvalid, q.Name, strings.Join(missing, " and "), q.Name)
	}
	if j.Spec.Image == "" && !j.Spec.HasCode() {
		return fmt.Errorf("%w: image: a sagemaker queue runs an image; give one with --image, or code with --dir or --git", job.ErrInvalid)
	}
	_, err := sageMakerRequest(q, j)
	return err
}

// sageMakerRequest builds the CreateTrainingJob request j would send on q,
// as the agent will: with the image it names (PlaceholderImage when it has
// code to build first) and attempt 1 when it has none yet.
func sageMakerRequest(q job.Queue, j job.Job) (*sagemaker.Request, error) {
	if j.Image == "" {
		j.Image = j.Spec.Image
	}
	if j.Image == "" {
		j.Image = PlaceholderImage
	}
	if j.Attempt == 0 {
		j.Attempt = 1
	}
	return sagemaker.BuildRequest(q, runner.Task{Job: &j, Name: runner.TaskName(j)})
}

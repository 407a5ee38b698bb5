package dashboard

import (
	"github.com/slipway-ml/slipway/internal/admission"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/runner"
	"github.com/slipway-ml/slipway/internal/runner/sagemaker"
)

// trainingRequest is the CreateTrainingJob request of a sagemaker job's
// current attempt, as its agent sends it, or why it cannot be built. A job
// whose image is still to be built shows admission's placeholder image.
func trainingRequest(q job.Queue, j job.Job) (string, string) {
	if j.Image == "" && j.Spec.Image == "" {
		j.Image = admission.PlaceholderImage
	}
	req, err := sagemaker.BuildRequest(q, runner.Task{Job: &j, Name: runner.TaskName(j)})
	if err != nil {
		return "", err.Error()
	}
	return string(req.JSON), ""
}

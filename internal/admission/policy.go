package admission

import (
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/runner/sagemaker"
)

// CheckPolicy checks j against its queue's policy: job.ErrForbidden naming
// the rule it breaks. At enqueue a job with code has no image yet, so the
// image rule waits for the agent, which must call CheckPolicy again with
// j.Image set to the built image, right before it submits the run.
func (Checker) CheckPolicy(q job.Queue, j job.Job) error {
	if q.Policy.IsZero() {
		return nil
	}
	in := job.PolicyInput{Image: j.Image}
	if in.Image == "" {
		in.Image = j.Spec.Image
	}
	if q.Resource == job.SageMaker {
		req, err := sageMakerRequest(q, j)
		if err != nil {
			return err
		}
		in = sageMakerInput(req)
		if in.Image == PlaceholderImage {
			in.Image = "" // built later: the agent checks it
		}
	}
	if j.Spec.Git != nil {
		in.GitURL = j.Spec.Git.URL
	}
	return q.Policy.Check(in)
}

// sageMakerInput reads what a policy judges from a CreateTrainingJob request.
func sageMakerInput(req *sagemaker.Request) job.PolicyInput {
	in := req.Input
	spot := in.EnableManagedSpotTraining != nil && *in.EnableManagedSpotTraining
	out := job.PolicyInput{Spot: &spot}
	if in.RoleArn != nil {
		out.RoleArn = *in.RoleArn
	}
	if a := in.AlgorithmSpecification; a != nil && a.TrainingImage != nil {
		out.Image = *a.TrainingImage
	}
	if rc := in.ResourceConfig; rc != nil {
		out.InstanceType = string(rc.InstanceType)
		if rc.InstanceCount != nil {
			out.InstanceCount = int(*rc.InstanceCount)
		}
	}
	if sc := in.StoppingCondition; sc != nil && sc.MaxRuntimeInSeconds != nil {
		out.MaxRuntimeSeconds = int(*sc.MaxRuntimeInSeconds)
	}
	return out
}

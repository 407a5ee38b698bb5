// Package config reads and checks the two kinds of configuration a user
// writes for Slipway: the agent's YAML file (the blocks W&B Launch users
// already have: environment, registry, builder, queues, max_jobs) and a
// sagemaker queue's config, a JSON body of SageMaker's CreateTrainingJob
// request, possibly holding {{name}} template variables filled at enqueue.
//
// Both are decoded strictly: an unknown key is an error naming its path, and
// every problem is reported at once as Errors, which wraps job.ErrInvalid.
// The package is pure: it reads no environment and makes no network call.
package config

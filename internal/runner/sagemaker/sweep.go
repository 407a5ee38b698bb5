package sagemaker

import (
	"context"
	"errors"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sagemaker"
)

// trainingJobLister is the optional ListTrainingJobs call the poller uses
// to find, in one paged call, the followed jobs whose status changed.
type trainingJobLister interface {
	ListTrainingJobs(ctx context.Context, in *sagemaker.ListTrainingJobsInput, opts ...func(*sagemaker.Options)) (*sagemaker.ListTrainingJobsOutput, error)
}

// Sweeps: while many jobs are followed, one ListTrainingJobs call (paged)
// every Config.SweepEvery lists the training jobs modified since the last
// sweep, with their status and secondary status. A job that trains then
// needs DescribeTrainingJob only when a sweep shows it changed (the poller
// hurries it), and every slowCheck as a safety net, instead of once a
// minute on its own: the account's Describe calls no longer grow with the
// jobs followed, and ListTrainingJobs stays at one page a second, under
// its quota of 2/s.
const (
	// sweepMin is how many jobs must be followed before sweeps start; below
	// it every job polls on its own.
	sweepMin = 50
	// sweepOverlap is how far back each sweep looks before the previous
	// one started: ListTrainingJobs is eventually consistent.
	sweepOverlap = 30 * time.Second
	// sweepPages bounds the pages of one sweep; a sweep that would need
	// more (an account modifying thousands of other jobs) gives up, and the
	// jobs poll on their own.
	sweepPages = 20
	// sweepPageGap is the pause between two pages: at most one
	// ListTrainingJobs call a second.
	sweepPageGap = time.Second
)

var errSweepTooLong = errors.New("more jobs modified than one sweep lists")

// sweep lists the training jobs modified since since and returns their
// "TrainingJobStatus/SecondaryStatus" by name.
func (r *Runner) sweep(ctx context.Context, since time.Time) (map[string]string, error) {
	l, ok := r.sm.(trainingJobLister)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	in := &sagemaker.ListTrainingJobsInput{LastModifiedTimeAfter: aws.Time(since), MaxResults: aws.Int32(100)}
	seen := map[string]string{}
	for range sweepPages {
		out, err := l.ListTrainingJobs(ctx, in)
		if err != nil {
			return nil, err
		}
		for _, s := range out.TrainingJobSummaries {
			seen[aws.ToString(s.TrainingJobName)] = string(s.TrainingJobStatus) + "/" + string(s.SecondaryStatus)
		}
		if aws.ToString(out.NextToken) == "" {
			return seen, nil
		}
		in.NextToken = out.NextToken
		if err := sleep(ctx, sweepPageGap); err != nil {
			return nil, err
		}
	}
	return nil, errSweepTooLong
}

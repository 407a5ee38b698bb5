package sagemaker

import (
	"context"
	"errors"
	"slices"
	"strings"
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
// sweep, with their status and secondary status. The list is narrowed to
// the names that contain what every followed job's name shares (at least
// the "-a<attempt>" every TrainingJobName built here ends with), so that
// other jobs of a shared account seldom fill its pages. A job that trains then
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
	// more (an account modifying thousands of other jobs) gives up, the
	// jobs poll on their own, and sweeps pause: 5 × PollMax (jittered down
	// to half of it), doubling after each such sweep up to sweepPauseMax.
	sweepPages = 20
	// sweepPauseMax caps the pause of sweeps after sweeps that listed too
	// many jobs.
	sweepPauseMax = time.Hour
	// minShared is the shortest part of the followed jobs' names worth
	// narrowing a sweep to.
	minShared = 2
	// sweepPageGap is the pause between two pages: at most one
	// ListTrainingJobs call a second.
	sweepPageGap = time.Second
)

var errSweepTooLong = errors.New("more jobs modified than one sweep lists")

// sweep lists the training jobs modified since since whose names contain
// nameContains ("": any name) and returns their
// "TrainingJobStatus/SecondaryStatus" by name.
func (r *Runner) sweep(ctx context.Context, since time.Time, nameContains string) (map[string]string, error) {
	l, ok := r.sm.(trainingJobLister)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	in := &sagemaker.ListTrainingJobsInput{LastModifiedTimeAfter: aws.Time(since), MaxResults: aws.Int32(100)}
	if nameContains != "" {
		in.NameContains = aws.String(nameContains)
	}
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
		if err := sleep(ctx, r.pageGap); err != nil {
			return nil, err
		}
	}
	return nil, errSweepTooLong
}

// sharedPart returns the longest part of a name that every name in names
// contains, or "" when they share nothing of minShared characters: what a
// sweep may narrow its list to while still listing every followed job.
// Names are at most 63 characters, so the candidates are few, and a
// candidate most names lack is dropped at the first of them.
func sharedPart(names []string) string {
	if len(names) == 0 {
		return ""
	}
	shortest := names[0]
	for _, n := range names[1:] {
		if len(n) < len(shortest) {
			shortest = n
		}
	}
	names = slices.Clone(names)
	for size := len(shortest); size >= minShared; size-- {
	candidates:
		for i := 0; i+size <= len(shortest); i++ {
			part := shortest[i : i+size]
			for k, n := range names {
				if !strings.Contains(n, part) {
					// Ask the name that ruled this part out first next time.
					names[0], names[k] = names[k], names[0]
					continue candidates
				}
			}
			return part
		}
	}
	return ""
}

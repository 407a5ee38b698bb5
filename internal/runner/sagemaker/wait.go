package sagemaker

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sagemaker"
	smtypes "github.com/aws/aws-sdk-go-v2/service/sagemaker/types"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/runner"
)

// Names of the outputs a finished training job leaves (see Outputs).
const (
	OutputModelArtifacts  = "model_artifacts"  // ModelArtifacts.S3ModelArtifacts
	OutputBillableSeconds = "billable_seconds" // BillableTimeInSeconds
	OutputTrainingJobArn  = "training_job_arn"
	OutputMetricPrefix    = "metric:" // one per FinalMetricDataList entry
)

// Wait follows the training job externalID to its end: it polls
// DescribeTrainingJob (backing off while nothing changes, jittered),
// reports starting and running to s, the secondary status transitions as
// "slipway" log notes and every CloudWatch log line of every host as
// "stdout", and returns how the job ended. Throttling and transient errors
// are retried and never taken for a job failure; a job SageMaker does not
// know is runner.ErrLost.
//
// The calls are made by the runner's one poller for every job it follows
// (see poller); Wait only registers the job and blocks until its end.
//
// Log cursors live in memory: a Wait that re-attaches after an agent
// restart replays the job's logs from the start, and the agent skips the
// lines it had already shipped.
//
// Wait keeps a small frame and blocks on one channel: an agent has a
// goroutine blocked in it for each job it follows, and the runtime shrinks
// an idle stack only down to four times what is in use.
func (r *Runner) Wait(ctx context.Context, t runner.Task, externalID string, s runner.Sink) (runner.Result, error) {
	j := r.track(ctx, t.Job, externalID, s)
	r.poller.follow(j)
	stop := context.AfterFunc(ctx, func() {
		r.poller.forget(j, fmt.Errorf("waiting for training job %s: %w", j.name, ctx.Err()))
	})
	e := <-j.done
	stop()
	return e.res, e.err
}

// track is the poller's record of the training job externalID that j ran as.
func (r *Runner) track(ctx context.Context, j *job.Job, externalID string, s runner.Sink) *tracked {
	return &tracked{ctx: ctx, r: r, name: externalID, sink: s, done: make(chan ended, 1), index: -1,
		id: j.ID, queue: j.Queue, attempt: j.Attempt, status: newBackoff(r.cfg.PollMin, r.cfg.PollMax)}
}

// logger returns the runner's logger with the job's attributes. It is made
// at each use, not kept: a job logs seldom while it is followed, and a
// logger made with With holds its attributes pre-formatted.
func (j *tracked) logger() *slog.Logger {
	return j.r.log.With("job", j.id, "queue", j.queue, "attempt", j.attempt, "training_job", j.name)
}

// advance makes the calls of j that are due: DescribeTrainingJob, then its
// logs while it trains. It reports what changed to j's sink and sets when
// j is due again; over is true when j has ended or cannot be followed.
func (r *Runner) advance(j *tracked) (e ended, over bool) {
	ctx := j.ctx
	now := time.Now()
	if !now.Before(j.nextCheck) {
		out, err := r.describe(ctx, j.logger(), j.name)
		if err != nil {
			if ctx.Err() != nil {
				err = fmt.Errorf("waiting for training job %s: %w", j.name, ctx.Err())
			}
			return ended{err: err}, true
		}
		if !j.described {
			j.described = true
			j.logs = newLogFollower(r, j.logger, j.name, j.sink, int(instanceCount(out)))
		}
		if len(out.SecondaryStatusTransitions) < j.seen {
			j.seen = 0 // not the same history: note it all again
		}
		for ; j.seen < len(out.SecondaryStatusTransitions); j.seen++ {
			j.sink.Log("slipway", transitionNote(out.SecondaryStatusTransitions[j.seen]))
		}
		if res, done := outcome(out); done {
			j.logs.drain(ctx) // the last lines reach the sink before the result
			res.Outputs = outputs(out)
			for _, n := range outputNotes(res.Outputs) {
				j.sink.Log("slipway", n)
			}
			j.logger().Info("training job ended", "state", res.State, "reason", res.Reason)
			return ended{res: res}, true
		}
		st := progress(out)
		if st != "" && st != j.reported {
			j.reported = st
			j.sink.State(st, string(out.SecondaryStatus))
		}
		if cur := string(out.TrainingJobStatus) + "/" + string(out.SecondaryStatus); cur != j.last {
			j.last = cur
			j.status.reset()
			j.logs.statusChanged()
		}
		j.running = st == job.Running
		j.nextCheck = time.Now().Add(j.status.next())
		// A training job changes seldom: while sweeps list what changed,
		// it is described only when they show it did, and now and then.
		j.slow = j.running && r.poller.sweepsFresh(now)
		if j.slow {
			j.nextCheck = time.Now().Add(r.poller.slowCheck)
		}
	}
	j.at = j.nextCheck
	if j.running {
		if now := time.Now(); j.logs.due(now) {
			if d := r.logsWait(now); d > 0 {
				// Over the budget: try again later, backing off as when
				// nothing new came.
				j.logs.next = now.Add(max(d, j.logs.wait.next()))
			} else {
				j.logs.poll(ctx, now)
			}
		}
		if j.logs.next.Before(j.at) {
			j.at = j.logs.next
		}
	}
	if ctx.Err() != nil {
		return ended{err: fmt.Errorf("waiting for training job %s: %w", j.name, ctx.Err())}, true
	}
	return ended{}, false
}

// logsWait returns how long until the log calls' budgets allow a poll.
func (r *Runner) logsWait(now time.Time) time.Duration {
	return max(r.budgets["DescribeLogStreams"].wait(now), r.budgets["GetLogEvents"].wait(now))
}

func instanceCount(out *sagemaker.DescribeTrainingJobOutput) int32 {
	if out.ResourceConfig == nil {
		return 1
	}
	n := aws.ToInt32(out.ResourceConfig.InstanceCount)
	for _, g := range out.ResourceConfig.InstanceGroups {
		n += aws.ToInt32(g.InstanceCount)
	}
	return n
}

// transitionNote is the log note for one secondary status transition.
func transitionNote(tr smtypes.SecondaryStatusTransition) string {
	msg := aws.ToString(tr.StatusMessage)
	if msg == "" {
		return "SageMaker: " + string(tr.Status)
	}
	return "SageMaker: " + string(tr.Status) + ": " + msg
}

// progress maps an in-progress job to the state to report: job.Starting
// while instances are found and readied (capacity waits included),
// job.Running while the job trains or uploads; "" when nothing is to be
// reported (stopping, or a status this runner does not know).
func progress(out *sagemaker.DescribeTrainingJobOutput) job.State {
	if out.TrainingJobStatus != smtypes.TrainingJobStatusInProgress {
		return ""
	}
	switch out.SecondaryStatus {
	case smtypes.SecondaryStatusStarting, smtypes.SecondaryStatusPending,
		smtypes.SecondaryStatusLaunchingMlInstances, smtypes.SecondaryStatusPreparingTrainingStack,
		smtypes.SecondaryStatusDownloading, smtypes.SecondaryStatusDownloadingTrainingImage,
		smtypes.SecondaryStatusRestarting, smtypes.SecondaryStatusInterrupted:
		return job.Starting
	case smtypes.SecondaryStatusTraining, smtypes.SecondaryStatusUploading, smtypes.SecondaryStatusUpdating:
		return job.Running
	}
	return ""
}

// outcome maps a job that has ended to its result; done is false while it
// has not. Stopped is a user's stop unless the secondary status says the
// job ran out of time (failed) or lost its spot capacity (preempted).
func outcome(out *sagemaker.DescribeTrainingJobOutput) (res runner.Result, done bool) {
	reason := strings.TrimSpace(aws.ToString(out.FailureReason))
	switch out.TrainingJobStatus {
	case smtypes.TrainingJobStatusCompleted:
		res = runner.Result{State: job.Finished, Reason: "Completed"}
		if out.BillableTimeInSeconds != nil {
			res.Reason = fmt.Sprintf("Completed, %d billable seconds", aws.ToInt32(out.BillableTimeInSeconds))
		}
	case smtypes.TrainingJobStatusFailed, smtypes.TrainingJobStatusStopped:
		res = stoppedOrFailed(out, reason)
	default:
		return runner.Result{}, false
	}
	return res, true
}

func stoppedOrFailed(out *sagemaker.DescribeTrainingJobOutput, reason string) runner.Result {
	switch out.SecondaryStatus {
	case smtypes.SecondaryStatusMaxRuntimeExceeded:
		limit := ""
		if out.StoppingCondition != nil && out.StoppingCondition.MaxRuntimeInSeconds != nil {
			limit = fmt.Sprintf(" (%d s)", aws.ToInt32(out.StoppingCondition.MaxRuntimeInSeconds))
		}
		return runner.Result{State: job.Failed, Reason: withDetail("MaxRuntimeExceeded: the job ran past StoppingCondition.MaxRuntimeInSeconds"+limit, reason)}
	case smtypes.SecondaryStatusInterrupted:
		return runner.Result{State: job.Preempted, Reason: withDetail("Interrupted: the spot capacity was reclaimed", reason)}
	case smtypes.SecondaryStatusMaxWaitTimeExceeded:
		return runner.Result{State: job.Preempted, Reason: withDetail("MaxWaitTimeExceeded: no spot capacity within StoppingCondition.MaxWaitTimeInSeconds", reason)}
	}
	if out.TrainingJobStatus == smtypes.TrainingJobStatusStopped {
		return runner.Result{State: job.Stopped, Reason: withDetail("stopped on request (StopTrainingJob)", reason)}
	}
	if reason == "" {
		reason = fmt.Sprintf("training job failed (secondary status %s) without a FailureReason; see its logs", out.SecondaryStatus)
	}
	return runner.Result{State: job.Failed, Reason: reason}
}

func withDetail(what, detail string) string {
	if detail == "" || strings.Contains(what, detail) {
		return what
	}
	return what + ": " + detail
}

// Outputs returns what the training job left: its model artifact URI, its
// billable seconds, its ARN and its final metrics (see the Output*
// names). The agent finds it by type assertion after Wait, to keep them
// on the job.
func (r *Runner) Outputs(ctx context.Context, externalID string) (map[string]string, error) {
	out, err := r.describe(ctx, r.log.With("training_job", externalID), externalID)
	if err != nil {
		return nil, err
	}
	return outputs(out), nil
}

func outputs(out *sagemaker.DescribeTrainingJobOutput) map[string]string {
	m := map[string]string{}
	if out.TrainingJobArn != nil {
		m[OutputTrainingJobArn] = *out.TrainingJobArn
	}
	if out.ModelArtifacts != nil && aws.ToString(out.ModelArtifacts.S3ModelArtifacts) != "" {
		m[OutputModelArtifacts] = *out.ModelArtifacts.S3ModelArtifacts
	}
	if out.BillableTimeInSeconds != nil {
		m[OutputBillableSeconds] = strconv.Itoa(int(*out.BillableTimeInSeconds))
	}
	for _, md := range out.FinalMetricDataList {
		if md.MetricName != nil && md.Value != nil {
			m[OutputMetricPrefix+*md.MetricName] = strconv.FormatFloat(float64(*md.Value), 'g', -1, 32)
		}
	}
	return m
}

// outputNotes are the outputs as log notes, sorted, so that a user sees
// them in the job's logs whatever the agent keeps.
func outputNotes(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	notes := make([]string, 0, len(keys))
	for _, k := range keys {
		notes = append(notes, fmt.Sprintf("output %s: %s", k, m[k]))
	}
	return notes
}

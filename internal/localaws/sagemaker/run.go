package sagemaker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/errdefs"

	"github.com/slipway-ml/slipway/internal/localaws/awsjson"
)

// jobRun is one goroutine's hold on a job while it runs.
type jobRun struct {
	s     *Service
	name  string
	job   Job // as of the last snapshot
	local localState
	log   *slog.Logger
}

// run takes a job from Starting to its end, or, with reattach, follows the
// containers of a job that an earlier service started.
func (s *Service) run(ctx context.Context, name string, a *activeJob, reattach bool) {
	rec, ok := s.snapshot(name)
	if !ok {
		return
	}
	r := &jobRun{s: s, name: name, job: rec.Job, local: rec.Local, log: s.log.With("job", name)}
	// Cleanup and the final record must happen even when ctx is done.
	bg := context.WithoutCancel(ctx)
	if reattach {
		if err := r.checkContainers(bg); err != nil {
			r.log.Warn("cannot re-attach", "err", err)
			r.finish(StatusFailed, SecondaryFailed, err.Error())
			r.cleanup(bg)
			return
		}
		r.log.Info("re-attached to training job")
		if r.job.TrainingJobStatus == StatusStopping {
			a.signal("user")
		}
	} else {
		if why, stopped := r.startDelay(ctx, a); stopped {
			r.endBeforeTraining(why)
			return
		}
		r.setSecondary(SecondaryDownloading, "Downloading input data")
		if err := r.prepare(bg); err != nil {
			r.log.Warn("training job could not start", "err", err)
			r.finish(StatusFailed, SecondaryFailed, "ClientError: "+err.Error())
			r.cleanup(bg)
			return
		}
		select {
		case why := <-a.stop:
			r.endBeforeTraining(why)
			r.cleanup(bg)
			return
		default:
		}
		if err := r.startContainers(bg); err != nil {
			r.finish(StatusFailed, SecondaryFailed, "ClientError: "+err.Error())
			r.cleanup(bg)
			return
		}
	}
	r.follow(ctx, a)
}

// startDelay holds a job in Starting for the injected slow-start delay.
func (r *jobRun) startDelay(ctx context.Context, a *activeJob) (string, bool) {
	d := r.s.cfg.Faults.StartDelay()
	if d <= 0 {
		return "", false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return "", false
	case why := <-a.stop:
		return why, true
	case <-ctx.Done():
		return "shutdown", true
	}
}

func (r *jobRun) endBeforeTraining(why string) {
	status, secondary, reason := outcome(why, nil, "")
	r.finish(status, secondary, reason)
}

// follow waits for the containers to end, enforcing MaxRuntimeInSeconds and
// acting on stop requests, then uploads the outputs and settles the job.
func (r *jobRun) follow(ctx context.Context, a *activeJob) {
	bg := context.WithoutCancel(ctx)
	followCtx, cancelFollow := context.WithCancel(bg)
	defer cancelFollow()

	var logs sync.WaitGroup
	for i, id := range r.local.Containers {
		logs.Add(1)
		go func() {
			defer logs.Done()
			r.streamLogs(followCtx, id, r.streamName(i))
		}()
	}
	type exit struct {
		i    int
		code int64
		err  error
	}
	exits := make(chan exit, len(r.local.Containers))
	for i, id := range r.local.Containers {
		go func() {
			okc, errc := r.s.cfg.Docker.ContainerWait(followCtx, id, container.WaitConditionNotRunning)
			select {
			case res := <-okc:
				exits <- exit{i: i, code: res.StatusCode}
			case err := <-errc:
				exits <- exit{i: i, code: -1, err: err}
			}
		}()
	}

	runtime := time.Duration(r.job.StoppingCondition.MaxRuntimeInSeconds) * time.Second
	started := time.Now()
	if r.job.TrainingStartTime != nil {
		started = r.job.TrainingStartTime.Time
	}
	deadline := time.NewTimer(max(0, time.Until(started.Add(runtime))))
	defer deadline.Stop()

	codes := make([]int64, len(r.local.Containers))
	why := ""
	stopAll := func(reason string) {
		if why == "" {
			why = reason
		}
		go r.stopContainers(bg)
	}
	done := ctx.Done()
	for left := len(codes); left > 0; {
		select {
		case e := <-exits:
			left--
			codes[e.i] = e.code
			if e.err != nil {
				r.log.Warn("waiting for container", "err", e.err)
			}
			if e.code != 0 && left > 0 {
				stopAll("")
			}
		case reason := <-a.stop:
			stopAll(reason)
		case <-deadline.C:
			stopAll("runtime")
		case <-done:
			done = nil
			if !r.s.cfg.StopOnShutdown {
				r.log.Info("endpoint shutting down; leaving the training containers running")
				return
			}
			stopAll("shutdown")
		}
	}
	logs.Wait()

	r.setSecondary(SecondaryUploading, "Uploading generated training model")
	failure, err := r.upload(bg)
	if err != nil {
		r.log.Warn("uploading outputs", "err", err)
		if why == "" && allZero(codes) {
			failure = "ClientError: uploading outputs: " + err.Error()
			codes = append(codes, 1)
		}
	}
	status, secondary, reason := outcome(why, codes, failure)
	r.finish(status, secondary, reason)
	r.cleanup(bg)
}

func allZero(codes []int64) bool {
	for _, c := range codes {
		if c != 0 {
			return false
		}
	}
	return true
}

// outcome decides how a job ended: why it was stopped (empty when it was
// not), its containers' exit codes and the text of /opt/ml/output/failure.
func outcome(why string, codes []int64, failure string) (status, secondary, reason string) {
	switch why {
	case "user":
		return StatusStopped, SecondaryStopped, ""
	case "shutdown":
		return StatusStopped, SecondaryStopped, "The local endpoint shut down while the job ran."
	case "runtime":
		return StatusStopped, SecondaryMaxRuntimeExceeded, "Training job exceeded MaxRuntimeInSeconds provided"
	case "interrupt":
		return StatusStopped, SecondaryInterrupted, "Spot instance interruption (injected by the local endpoint)"
	}
	for _, c := range codes {
		if c != 0 {
			msg := strings.TrimSpace(failure)
			if msg == "" {
				msg = "see the job's logs for more information"
			}
			if strings.HasPrefix(msg, "ClientError:") {
				return StatusFailed, SecondaryFailed, msg
			}
			return StatusFailed, SecondaryFailed, fmt.Sprintf("AlgorithmError: %s, exit code: %d", msg, c)
		}
	}
	return StatusCompleted, SecondaryCompleted, ""
}

var statusMessages = map[string]string{
	SecondaryCompleted:          "Training job completed",
	SecondaryFailed:             "Training job failed",
	SecondaryStopped:            "The training job was stopped",
	SecondaryMaxRuntimeExceeded: "Training job exceeded MaxRuntimeInSeconds provided",
	SecondaryInterrupted:        "The spot instance was interrupted",
}

// finish writes a job's final state.
func (r *jobRun) finish(status, secondary, reason string) {
	err := r.s.update(r.name, func(rec *record) {
		now := time.Now()
		transition(&rec.Job, secondary, statusMessages[secondary])
		last := &rec.Job.SecondaryStatusTransitions[len(rec.Job.SecondaryStatusTransitions)-1]
		last.EndTime = last.StartTime
		rec.Job.TrainingJobStatus = status
		rec.Job.FailureReason = reason
		if rec.Job.TrainingStartTime != nil {
			rec.Job.TrainingEndTime = awsjson.NewTime(now)
		}
		r.job = rec.Job
	})
	if err != nil {
		r.log.Error("recording the end of a training job", "err", err)
	}
	r.log.Info("training job ended", "status", status, "secondary", secondary, "reason", reason)
}

// setSecondary moves the job on, unless it is already being stopped (the
// Stopping entry stays the last one shown).
func (r *jobRun) setSecondary(status, msg string) {
	err := r.s.update(r.name, func(rec *record) {
		if rec.Job.TrainingJobStatus == StatusStopping {
			return
		}
		transition(&rec.Job, status, msg)
		if status == SecondaryTraining {
			rec.Job.TrainingStartTime = rec.Job.LastModifiedTime
		}
		r.job = rec.Job
	})
	if err != nil {
		r.log.Error("recording a training job's status", "err", err)
	}
}

// checkContainers makes sure a re-attached job's containers still exist.
func (r *jobRun) checkContainers(ctx context.Context) error {
	if len(r.local.Containers) == 0 {
		return errors.New("the local endpoint stopped before the job's containers were started")
	}
	for i, id := range r.local.Containers {
		if _, err := r.s.cfg.Docker.ContainerInspect(ctx, id); err != nil {
			if errdefs.IsNotFound(err) {
				return fmt.Errorf("the training container of algo-%d vanished while the local endpoint was down", i+1)
			}
			return fmt.Errorf("inspecting the training container of algo-%d: %w", i+1, err)
		}
	}
	return nil
}

package sagemaker

import (
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/slipway-ml/slipway/internal/localaws/awsjson"
)

// TargetPrefix is the X-Amz-Target prefix of SageMaker operations.
const TargetPrefix = "SageMaker."

// Handler returns the handler of one operation (the part of X-Amz-Target
// after the prefix), or nil when it is not served.
func (s *Service) Handler(op string, log *slog.Logger) http.Handler {
	return awsjson.Ops{
		"CreateTrainingJob":   s.create,
		"DescribeTrainingJob": s.describe,
		"StopTrainingJob":     s.stopJob,
		"ListTrainingJobs":    s.list,
		"DeleteTrainingJob":   s.delete,
	}.Handler(op, log)
}

var errNotFound = awsjson.Validation("Requested resource not found.")

func (s *Service) arn(name string) string {
	return "arn:aws:sagemaker:" + s.cfg.Region + ":" + s.cfg.Account + ":training-job/" + strings.ToLower(name)
}

func (s *Service) create(r *http.Request) (any, error) {
	var req CreateRequest
	if err := awsjson.Decode(r, &req); err != nil {
		return nil, err
	}
	if err := Validate(&req, Limits{MaxInstanceCount: s.cfg.MaxInstanceCount}); err != nil {
		return nil, err
	}
	if req.StoppingCondition.MaxRuntimeInSeconds == 0 {
		req.StoppingCondition.MaxRuntimeInSeconds = 86400
	}
	if s.cfg.Faults.Capacity() {
		return nil, awsjson.Errorf("ResourceLimitExceeded",
			"CapacityError: Unable to provision requested ML compute capacity. Please retry using a different ML instance type. (injected fault)")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing || s.baseCtx == nil {
		return nil, awsjson.Errorf("ServiceUnavailable", "the local endpoint is not running training jobs")
	}
	if _, ok := s.jobs[req.TrainingJobName]; ok {
		return nil, awsjson.Errorf("ResourceInUse", "Training job names must be unique within an AWS account and region, and a training job with this name already exists (%s)", s.arn(req.TrainingJobName))
	}
	if max := s.cfg.MaxRunningJobs; max > 0 {
		running := 0
		for _, rec := range s.jobs {
			if !terminal(rec.Job.TrainingJobStatus) {
				running++
			}
		}
		if running >= max {
			return nil, awsjson.Errorf("ResourceLimitExceeded",
				"The account-level service limit 'number of concurrent training jobs' is %d, with current utilization of %d. (local endpoint limit)", max, running)
		}
	}
	now := time.Now()
	rec := &record{Job: Job{
		CreateRequest:     req,
		TrainingJobArn:    s.arn(req.TrainingJobName),
		TrainingJobStatus: StatusInProgress,
		SecondaryStatus:   SecondaryStarting,
		CreationTime:      awsjson.NewTime(now),
		LastModifiedTime:  awsjson.NewTime(now),
		SecondaryStatusTransitions: []Transition{{Status: SecondaryStarting, StartTime: awsjson.NewTime(now),
			StatusMessage: "Launching requested ML instances"}},
	}}
	if err := s.saveLocked(rec); err != nil {
		return nil, err
	}
	s.jobs[req.TrainingJobName] = rec
	s.launchLocked(req.TrainingJobName, false)
	s.log.Info("training job created", "job", req.TrainingJobName, "image", req.AlgorithmSpecification.TrainingImage)
	return map[string]string{"TrainingJobArn": rec.Job.TrainingJobArn}, nil
}

type nameRequest struct {
	TrainingJobName string `json:"TrainingJobName"`
}

func (s *Service) describe(r *http.Request) (any, error) {
	var in nameRequest
	if err := awsjson.Decode(r, &in); err != nil {
		return nil, err
	}
	rec, ok := s.snapshot(in.TrainingJobName)
	if !ok {
		return nil, errNotFound
	}
	j := rec.Job
	if j.TrainingStartTime != nil {
		end := time.Now()
		if j.TrainingEndTime != nil {
			end = j.TrainingEndTime.Time
		}
		// Whole seconds, rounded up as SageMaker bills them: a job that
		// trained at all has at least one.
		j.TrainingTimeInSeconds = max(1, int64(math.Ceil(end.Sub(j.TrainingStartTime.Time).Seconds())))
		j.BillableTimeInSeconds = j.TrainingTimeInSeconds
	}
	return j, nil
}

func (s *Service) stopJob(r *http.Request) (any, error) {
	var in nameRequest
	if err := awsjson.Decode(r, &in); err != nil {
		return nil, err
	}
	if err := s.Stop(in.TrainingJobName, "user"); err != nil {
		return nil, err
	}
	return nil, nil
}

// Stop asks a job to stop; why is "user" (StopTrainingJob) or "interrupt"
// (an injected spot interruption).
func (s *Service) Stop(name, why string) error {
	s.mu.Lock()
	rec, ok := s.jobs[name]
	if !ok {
		s.mu.Unlock()
		return errNotFound
	}
	status := rec.Job.TrainingJobStatus
	a := s.active[name]
	s.mu.Unlock()
	switch {
	case status == StatusStopping:
		return nil
	case terminal(status) || a == nil:
		return awsjson.Validation("The request was rejected because the training job is in status %s.", status)
	case why == "interrupt" && !rec.Job.EnableManagedSpotTraining:
		return awsjson.Validation("Training job %s does not use managed spot training; only spot jobs can be interrupted.", name)
	}
	if why == "user" {
		if err := s.update(name, func(rec *record) {
			// The job may have ended since the check above.
			if rec.Job.TrainingJobStatus == StatusInProgress {
				rec.Job.TrainingJobStatus = StatusStopping
				transition(&rec.Job, SecondaryStopping, "Stopping the training job")
			}
		}); err != nil {
			return err
		}
	}
	a.signal(why)
	return nil
}

func (s *Service) delete(r *http.Request) (any, error) {
	var in nameRequest
	if err := awsjson.Decode(r, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.jobs[in.TrainingJobName]
	if !ok {
		return nil, awsjson.Errorf("ResourceNotFound", "Training job %s does not exist.", in.TrainingJobName)
	}
	if !terminal(rec.Job.TrainingJobStatus) || s.active[in.TrainingJobName] != nil {
		return nil, awsjson.Validation("Training job %s is in status %s; only a Completed, Failed or Stopped job can be deleted.",
			in.TrainingJobName, rec.Job.TrainingJobStatus)
	}
	if err := removeRecord(s.cfg.Dir, in.TrainingJobName); err != nil {
		return nil, err
	}
	delete(s.jobs, in.TrainingJobName)
	return nil, nil
}

type listRequest struct {
	CreationTimeAfter      *awsjson.Time `json:"CreationTimeAfter"`
	CreationTimeBefore     *awsjson.Time `json:"CreationTimeBefore"`
	LastModifiedTimeAfter  *awsjson.Time `json:"LastModifiedTimeAfter"`
	LastModifiedTimeBefore *awsjson.Time `json:"LastModifiedTimeBefore"`
	MaxResults             int           `json:"MaxResults"`
	NameContains           string        `json:"NameContains"`
	NextToken              string        `json:"NextToken"`
	SortBy                 string        `json:"SortBy"`
	SortOrder              string        `json:"SortOrder"`
	StatusEquals           string        `json:"StatusEquals"`
}

type summary struct {
	TrainingJobName   string        `json:"TrainingJobName"`
	TrainingJobArn    string        `json:"TrainingJobArn"`
	CreationTime      *awsjson.Time `json:"CreationTime"`
	TrainingEndTime   *awsjson.Time `json:"TrainingEndTime,omitempty"`
	LastModifiedTime  *awsjson.Time `json:"LastModifiedTime,omitempty"`
	TrainingJobStatus string        `json:"TrainingJobStatus"`
	SecondaryStatus   string        `json:"SecondaryStatus,omitempty"`
}

func (s *Service) list(r *http.Request) (any, error) {
	var in listRequest
	if err := awsjson.Decode(r, &in); err != nil {
		return nil, err
	}
	var v validator
	v.enum(in.SortBy, "sortBy", "Name", "CreationTime", "Status")
	v.enum(in.SortOrder, "sortOrder", "Ascending", "Descending")
	v.enum(in.StatusEquals, "statusEquals", StatusInProgress, StatusCompleted, StatusFailed, StatusStopping, StatusStopped)
	if in.MaxResults < 0 || in.MaxResults > 100 {
		v.failf(in.MaxResults, "maxResults", "Member must have value between 1 and 100")
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	if in.MaxResults == 0 {
		in.MaxResults = 10
	}
	start := 0
	if in.NextToken != "" {
		n, err := strconv.Atoi(in.NextToken)
		if err != nil || n < 0 {
			return nil, awsjson.Validation("Invalid pagination token %q.", in.NextToken)
		}
		start = n
	}
	var all []summary
	s.mu.Lock()
	for _, rec := range s.jobs {
		j := rec.Job
		if !matches(&in, &j) {
			continue
		}
		all = append(all, summary{TrainingJobName: j.TrainingJobName, TrainingJobArn: j.TrainingJobArn,
			CreationTime: j.CreationTime, TrainingEndTime: j.TrainingEndTime, LastModifiedTime: j.LastModifiedTime,
			TrainingJobStatus: j.TrainingJobStatus, SecondaryStatus: j.SecondaryStatus})
	}
	s.mu.Unlock()
	sortSummaries(all, in.SortBy, in.SortOrder == "Descending")
	start = min(start, len(all))
	end := min(len(all), start+in.MaxResults)
	out := map[string]any{"TrainingJobSummaries": append([]summary{}, all[start:end]...)}
	if end < len(all) {
		out["NextToken"] = strconv.Itoa(end)
	}
	return out, nil
}

func matches(in *listRequest, j *Job) bool {
	created, modified := j.CreationTime.Time, j.LastModifiedTime.Time
	switch {
	case in.NameContains != "" && !strings.Contains(strings.ToLower(j.TrainingJobName), strings.ToLower(in.NameContains)):
		return false
	case in.StatusEquals != "" && j.TrainingJobStatus != in.StatusEquals:
		return false
	case in.CreationTimeAfter != nil && !created.After(in.CreationTimeAfter.Time):
		return false
	case in.CreationTimeBefore != nil && !created.Before(in.CreationTimeBefore.Time):
		return false
	case in.LastModifiedTimeAfter != nil && !modified.After(in.LastModifiedTimeAfter.Time):
		return false
	case in.LastModifiedTimeBefore != nil && !modified.Before(in.LastModifiedTimeBefore.Time):
		return false
	}
	return true
}

func sortSummaries(all []summary, by string, desc bool) {
	slices.SortStableFunc(all, func(a, b summary) int {
		var c int
		switch by {
		case "Name":
			c = strings.Compare(a.TrainingJobName, b.TrainingJobName)
		case "Status":
			c = strings.Compare(a.TrainingJobStatus, b.TrainingJobStatus)
		default:
			c = a.CreationTime.Compare(b.CreationTime.Time)
		}
		if c == 0 {
			c = strings.Compare(a.TrainingJobName, b.TrainingJobName)
		}
		if desc {
			return -c
		}
		return c
	})
}

// transition moves a job's SecondaryStatus on, closing the previous entry.
func transition(j *Job, status, msg string) {
	now := awsjson.NewTime(time.Now())
	if n := len(j.SecondaryStatusTransitions); n > 0 && j.SecondaryStatusTransitions[n-1].EndTime == nil {
		j.SecondaryStatusTransitions[n-1].EndTime = now
	}
	j.SecondaryStatus = status
	j.LastModifiedTime = now
	j.SecondaryStatusTransitions = append(j.SecondaryStatusTransitions, Transition{Status: status, StartTime: now, StatusMessage: msg})
}

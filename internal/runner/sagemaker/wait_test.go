package sagemaker

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sagemaker"
	smtypes "github.com/aws/aws-sdk-go-v2/service/sagemaker/types"
	"github.com/aws/smithy-go"

	"github.com/slipway-ml/slipway/internal/job"
)

func TestStates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status    smtypes.TrainingJobStatus
		secondary smtypes.SecondaryStatus
		failure   string
		progress  job.State // for jobs in progress
		end       job.State // for jobs that ended
		reason    string    // a substring of the result's reason
	}{
		{status: "InProgress", secondary: "Starting", progress: job.Starting},
		{status: "InProgress", secondary: "Pending", progress: job.Starting},
		{status: "InProgress", secondary: "LaunchingMLInstances", progress: job.Starting},
		{status: "InProgress", secondary: "PreparingTrainingStack", progress: job.Starting},
		{status: "InProgress", secondary: "Downloading", progress: job.Starting},
		{status: "InProgress", secondary: "DownloadingTrainingImage", progress: job.Starting},
		{status: "InProgress", secondary: "Interrupted", progress: job.Starting},
		{status: "InProgress", secondary: "Restarting", progress: job.Starting},
		{status: "InProgress", secondary: "Training", progress: job.Running},
		{status: "InProgress", secondary: "Uploading", progress: job.Running},
		{status: "Stopping", secondary: "Stopping"},
		{status: "Completed", secondary: "Completed", end: job.Finished},
		{status: "Failed", secondary: "Failed", failure: "AlgorithmError: bad data, exit code: 3", end: job.Failed, reason: "AlgorithmError: bad data, exit code: 3"},
		{status: "Failed", secondary: "Failed", end: job.Failed, reason: "without a FailureReason"},
		{status: "Stopped", secondary: "Stopped", end: job.Stopped, reason: "StopTrainingJob"},
		{status: "Stopped", secondary: "MaxRuntimeExceeded", failure: "Training job exceeded MaxRuntimeInSeconds provided", end: job.Failed, reason: "MaxRuntimeExceeded"},
		{status: "Failed", secondary: "MaxRuntimeExceeded", end: job.Failed, reason: "MaxRuntimeInSeconds (60 s)"},
		{status: "Stopped", secondary: "Interrupted", end: job.Preempted, reason: "Interrupted"},
		{status: "Stopped", secondary: "MaxWaitTimeExceeded", end: job.Preempted, reason: "MaxWaitTimeExceeded"},
		{status: "Failed", secondary: "MaxWaitTimeExceeded", end: job.Preempted, reason: "MaxWaitTimeExceeded"},
	}
	for _, tc := range tests {
		out := &sagemaker.DescribeTrainingJobOutput{TrainingJobStatus: tc.status, SecondaryStatus: tc.secondary,
			StoppingCondition: &smtypes.StoppingCondition{MaxRuntimeInSeconds: aws.Int32(60)}}
		if tc.failure != "" {
			out.FailureReason = aws.String(tc.failure)
		}
		if got := progress(out); got != tc.progress {
			t.Errorf("%s/%s: progress: got %q, want %q", tc.status, tc.secondary, got, tc.progress)
		}
		res, done := outcome(out)
		if done != (tc.end != "") || res.State != tc.end {
			t.Errorf("%s/%s: outcome: got %q (done %t), want %q", tc.status, tc.secondary, res.State, done, tc.end)
		}
		if !strings.Contains(res.Reason, tc.reason) {
			t.Errorf("%s/%s: reason: got %q, want it to contain %q", tc.status, tc.secondary, res.Reason, tc.reason)
		}
	}
}

func TestRetryable(t *testing.T) {
	t.Parallel()
	api := func(code, msg string) error { return &smithy.GenericAPIError{Code: code, Message: msg} }
	tests := []struct {
		err       error
		retry     bool
		isMissing bool
	}{
		{api("ThrottlingException", "Rate exceeded"), true, false},
		{api("ServiceUnavailable", ""), true, false},
		{api("ExpiredTokenException", ""), true, false},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, true, false},
		{api("ValidationException", "Requested resource not found."), false, true},
		{api("ResourceNotFound", "Training job x does not exist."), false, true},
		{api("ValidationException", "The request was rejected because the training job is in status Stopped."), false, false},
		{api("AccessDeniedException", ""), false, false},
		{&smithy.InvalidParamsError{Context: "x"}, false, false},
	}
	for _, tc := range tests {
		if got := retryable(tc.err); got != tc.retry {
			t.Errorf("retryable(%v): got %t, want %t", tc.err, got, tc.retry)
		}
		if got := notFound(tc.err); got != tc.isMissing {
			t.Errorf("notFound(%v): got %t, want %t", tc.err, got, tc.isMissing)
		}
	}
}

func TestBackoffStaysWithinBounds(t *testing.T) {
	t.Parallel()
	b := newBackoff(100, 1000)
	want := []int64{100, 200, 400, 800, 1000, 1000}
	for i, cur := range want {
		d := int64(b.next())
		if d < cur/2 || d > cur {
			t.Errorf("step %d: got %d, want within [%d, %d]", i, d, cur/2, cur)
		}
	}
	b.reset()
	if d := int64(b.next()); d < 50 || d > 100 {
		t.Errorf("after reset: got %d, want within [50, 100]", d)
	}
}

func TestHostOf(t *testing.T) {
	t.Parallel()
	for stream, want := range map[string]string{
		"job-a1/algo-1-1700000000": "algo-1",
		"job-a1/algo-12-17":        "algo-12",
		"job-a1/other":             "other",
	} {
		if got := hostOf("job-a1", stream); got != want {
			t.Errorf("hostOf(%q): got %q, want %q", stream, got, want)
		}
	}
}

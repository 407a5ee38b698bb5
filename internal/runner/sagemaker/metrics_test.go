package sagemaker

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sagemaker"

	"github.com/slipway-ml/slipway/internal/localaws"
	"github.com/slipway-ml/slipway/internal/localaws/localawstest"
	"github.com/slipway-ml/slipway/internal/metrics"
)

// counted returns the value of family name's series for operation op.
func counted(t *testing.T, m *metrics.Metrics, name, op string) float64 {
	t.Helper()
	fams, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatalf("gathering: %v", err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["service"] == "SageMaker" && labels["operation"] == op {
				return s.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestAPIOptionsCountCallsAndThrottles gives New the metrics middleware and
// calls the local endpoint while it throttles every call, then while it
// throttles none: each attempt is a call, and only the throttled ones are
// throttles.
func TestAPIOptionsCountCallsAndThrottles(t *testing.T) {
	t.Parallel()
	srv := localawstest.Start(t, localaws.Config{Faults: localaws.Faults{ThrottleRate: 1}, StopOnShutdown: true})
	m := metrics.New()
	r, err := New(context.Background(), Config{Region: "us-east-1", Endpoint: srv.URL(), APIOptions: m.AWSAPIOptions()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	describe := func() error {
		_, err := r.sm.DescribeTrainingJob(context.Background(), &sagemaker.DescribeTrainingJobInput{TrainingJobName: aws.String("no-such-job")},
			func(o *sagemaker.Options) { o.RetryMaxAttempts = 1 })
		return err
	}
	for range 3 {
		if err := describe(); err == nil {
			t.Fatal("DescribeTrainingJob while throttled: no error, want a throttle")
		}
	}
	if got := counted(t, m, "slipway_aws_api_calls_total", "DescribeTrainingJob"); got != 3 {
		t.Errorf("calls while throttled: got %v, want 3", got)
	}
	if got := counted(t, m, "slipway_aws_api_throttles_total", "DescribeTrainingJob"); got != 3 {
		t.Errorf("throttles while throttled: got %v, want 3", got)
	}
	if err := srv.SetFaults(localaws.Faults{}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		_ = describe() // the job does not exist: an error, not a throttle
	}
	if got := counted(t, m, "slipway_aws_api_calls_total", "DescribeTrainingJob"); got != 5 {
		t.Errorf("calls in all: got %v, want 5", got)
	}
	if got := counted(t, m, "slipway_aws_api_throttles_total", "DescribeTrainingJob"); got != 3 {
		t.Errorf("throttles in all: got %v, want still 3", got)
	}
}

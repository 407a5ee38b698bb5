package sagemaker

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/aws-sdk-go-v2/service/sagemaker"
	smtypes "github.com/aws/aws-sdk-go-v2/service/sagemaker/types"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/runner"
	"github.com/slipway-ml/slipway/internal/runner/runnertest"
)

// scripted is a hand-written SageMaker and CloudWatch Logs endpoint whose
// training job walks through phases, one per DescribeTrainingJob call, and
// that counts the log calls made in each phase. Its job writes one stream
// with two lines once it trains.
type scripted struct {
	name   string
	phases []smtypes.SecondaryStatus

	mu       sync.Mutex
	describe int                                  // DescribeTrainingJob calls so far
	calls    map[smtypes.SecondaryStatus][]string // log calls by the phase they were made in
}

func (f *scripted) phase() smtypes.SecondaryStatus {
	return f.phases[min(max(f.describe-1, 0), len(f.phases)-1)]
}

func (f *scripted) CreateTrainingJob(context.Context, *sagemaker.CreateTrainingJobInput, ...func(*sagemaker.Options)) (*sagemaker.CreateTrainingJobOutput, error) {
	return &sagemaker.CreateTrainingJobOutput{}, nil
}

func (f *scripted) StopTrainingJob(context.Context, *sagemaker.StopTrainingJobInput, ...func(*sagemaker.Options)) (*sagemaker.StopTrainingJobOutput, error) {
	return &sagemaker.StopTrainingJobOutput{}, nil
}

func (f *scripted) DescribeTrainingJob(context.Context, *sagemaker.DescribeTrainingJobInput, ...func(*sagemaker.Options)) (*sagemaker.DescribeTrainingJobOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.describe++
	ph := f.phase()
	status := smtypes.TrainingJobStatusInProgress
	if ph == smtypes.SecondaryStatusCompleted {
		status = smtypes.TrainingJobStatusCompleted
	}
	return &sagemaker.DescribeTrainingJobOutput{TrainingJobName: aws.String(f.name), TrainingJobStatus: status, SecondaryStatus: ph,
		ResourceConfig: &smtypes.ResourceConfig{InstanceCount: aws.Int32(1)}}, nil
}

func (f *scripted) note(op string) smtypes.SecondaryStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	ph := f.phase()
	f.calls[ph] = append(f.calls[ph], op)
	return ph
}

func (f *scripted) DescribeLogStreams(context.Context, *cloudwatchlogs.DescribeLogStreamsInput, ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.DescribeLogStreamsOutput, error) {
	if ph := f.note("DescribeLogStreams"); ph == smtypes.SecondaryStatusStarting {
		return &cloudwatchlogs.DescribeLogStreamsOutput{}, nil
	}
	return &cloudwatchlogs.DescribeLogStreamsOutput{LogStreams: []cwtypes.LogStream{{LogStreamName: aws.String(f.name + "/algo-1-1")}}}, nil
}

func (f *scripted) GetLogEvents(_ context.Context, in *cloudwatchlogs.GetLogEventsInput, _ ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.GetLogEventsOutput, error) {
	f.note("GetLogEvents")
	if in.NextToken != nil {
		return &cloudwatchlogs.GetLogEventsOutput{NextForwardToken: aws.String("f/1")}, nil
	}
	return &cloudwatchlogs.GetLogEventsOutput{NextForwardToken: aws.String("f/1"),
		Events: []cwtypes.OutputLogEvent{{Message: aws.String("one\n")}, {Message: aws.String("two")}}}, nil
}

func count(ops []string, op string) int {
	n := 0
	for _, o := range ops {
		if o == op {
			n++
		}
	}
	return n
}

// TestLogCallsFollowTheJob checks what the log follower costs: no log call
// while the job starts, the streams listed once when it starts training and
// once more at its end (not on every poll), every line still delivered.
func TestLogCallsFollowTheJob(t *testing.T) {
	t.Parallel()
	S := smtypes.SecondaryStatusStarting
	T := smtypes.SecondaryStatusTraining
	f := &scripted{name: "j-a1", calls: map[smtypes.SecondaryStatus][]string{},
		phases: []smtypes.SecondaryStatus{S, S, S, S, T, T, T, T, T, T, T, T, smtypes.SecondaryStatusCompleted}}
	cfg := Config{PollMin: 5 * time.Millisecond, PollMax: 5 * time.Millisecond, LogPoll: time.Millisecond}.WithDefaults()
	r := newRunner(cfg, f, f)
	r.rediscover = time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var s runnertest.Sink
	res, err := r.Wait(ctx, runner.Task{Job: &job.Job{ID: "j", Attempt: 1}, Name: f.name}, f.name, &s)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if res.State != job.Finished {
		t.Errorf("result: got %s (%q), want %s", res.State, res.Reason, job.Finished)
	}
	if got := s.Lines("stdout"); !slices.Equal(got, []string{"one", "two"}) {
		t.Errorf("stdout: got %q, want [one two]", got)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if got := f.calls[S]; len(got) != 0 {
		t.Errorf("log calls while Starting: got %q, want none", got)
	}
	if got := count(f.calls[T], "DescribeLogStreams"); got != 1 {
		t.Errorf("DescribeLogStreams while Training: got %d, want 1 (the stream is known after the first)", got)
	}
	if got := count(f.calls[T], "GetLogEvents"); got == 0 {
		t.Errorf("GetLogEvents while Training: got 0, want the stream read while the job trains")
	}
	if got := count(f.calls[smtypes.SecondaryStatusCompleted], "DescribeLogStreams"); got != 1 {
		t.Errorf("DescribeLogStreams at the end: got %d, want 1 (a last listing before the drain)", got)
	}
}

// TestLogPollingBacksOff checks that a training job that writes nothing is
// read less and less often: the waits between polls grow up to the cap.
func TestLogPollingBacksOff(t *testing.T) {
	t.Parallel()
	cfg := Config{PollMin: time.Second, PollMax: 8 * time.Second, LogPoll: time.Second, LogPollMax: 4 * time.Second}.WithDefaults()
	f := &scripted{name: "j-a1", calls: map[smtypes.SecondaryStatus][]string{}, phases: []smtypes.SecondaryStatus{smtypes.SecondaryStatusTraining}}
	lf := newLogFollower(newRunner(cfg, f, f), func() *slog.Logger { return cfg.Logger }, f.name, &runnertest.Sink{}, 1)
	ctx := context.Background()
	// The first poll finds the stream and its two lines: the wait stays short.
	lf.poll(ctx, time.Now())
	if got := lf.wait.cur; got != cfg.LogPoll {
		t.Errorf("wait after new lines: got %v, want %v", got, cfg.LogPoll)
	}
	want := []time.Duration{2 * time.Second, 4 * time.Second, 4 * time.Second}
	for i, w := range want {
		lf.poll(ctx, time.Now())
		if got := lf.wait.cur; got != w {
			t.Errorf("wait after %d empty polls: got %v, want %v", i+1, got, w)
		}
	}
	lf.statusChanged()
	if !lf.due(time.Now()) || lf.wait.cur != 0 {
		t.Errorf("after a status change: got due %t, backoff %v, want a poll at once from the start", lf.due(time.Now()), lf.wait.cur)
	}
}

package sagemaker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/sagemaker"
	smtypes "github.com/aws/aws-sdk-go-v2/service/sagemaker/types"
	"github.com/aws/smithy-go"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/runner"
	"github.com/slipway-ml/slipway/internal/runner/runnertest"
)

// fleet is a hand-written SageMaker endpoint for many training jobs: each
// trains for a number of DescribeTrainingJob calls, then completes; a
// stopped one answers Stopped. It notes how many calls run at once.
type fleet struct {
	block chan struct{} // when set, each Describe waits for a token

	mu        sync.Mutex
	left      map[string]int // describes before the job completes
	stopped   map[string]bool
	describes map[string]int
	inflight  int
	most      int // most Describe calls in flight at once
	listed    int // DescribeLogStreams calls
}

func newFleet(names []string, describes int) *fleet {
	f := &fleet{left: map[string]int{}, stopped: map[string]bool{}, describes: map[string]int{}}
	for _, n := range names {
		f.left[n] = describes
	}
	return f
}

func (f *fleet) CreateTrainingJob(context.Context, *sagemaker.CreateTrainingJobInput, ...func(*sagemaker.Options)) (*sagemaker.CreateTrainingJobOutput, error) {
	return &sagemaker.CreateTrainingJobOutput{}, nil
}

func (f *fleet) StopTrainingJob(_ context.Context, in *sagemaker.StopTrainingJobInput, _ ...func(*sagemaker.Options)) (*sagemaker.StopTrainingJobOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped[aws.ToString(in.TrainingJobName)] = true
	return &sagemaker.StopTrainingJobOutput{}, nil
}

func (f *fleet) DescribeTrainingJob(ctx context.Context, in *sagemaker.DescribeTrainingJobInput, _ ...func(*sagemaker.Options)) (*sagemaker.DescribeTrainingJobOutput, error) {
	name := aws.ToString(in.TrainingJobName)
	f.mu.Lock()
	f.inflight++
	f.most = max(f.most, f.inflight)
	f.mu.Unlock()
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inflight--
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	left, ok := f.left[name]
	if !ok {
		return nil, &smithy.GenericAPIError{Code: "ValidationException", Message: "Requested resource not found."}
	}
	f.describes[name]++
	out := &sagemaker.DescribeTrainingJobOutput{TrainingJobName: aws.String(name),
		TrainingJobStatus: smtypes.TrainingJobStatusInProgress, SecondaryStatus: smtypes.SecondaryStatusTraining}
	switch {
	case f.stopped[name]:
		out.TrainingJobStatus, out.SecondaryStatus = smtypes.TrainingJobStatusStopped, smtypes.SecondaryStatusStopped
	case left <= 1:
		out.TrainingJobStatus, out.SecondaryStatus = smtypes.TrainingJobStatusCompleted, smtypes.SecondaryStatusCompleted
	default:
		f.left[name]--
	}
	return out, nil
}

func (f *fleet) DescribeLogStreams(context.Context, *cloudwatchlogs.DescribeLogStreamsInput, ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.DescribeLogStreamsOutput, error) {
	f.mu.Lock()
	f.listed++
	f.mu.Unlock()
	return &cloudwatchlogs.DescribeLogStreamsOutput{}, nil
}

func (f *fleet) GetLogEvents(context.Context, *cloudwatchlogs.GetLogEventsInput, ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.GetLogEventsOutput, error) {
	return &cloudwatchlogs.GetLogEventsOutput{}, nil
}

func (f *fleet) calls(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.describes[name]
}

func jobNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("j%d-a1", i)
	}
	return names
}

func waitTask(name string) runner.Task {
	return runner.Task{Job: &job.Job{ID: name, Queue: "q", Attempt: 1}, Name: name}
}

// TestPollerBoundsCallsInFlight follows many jobs with a concurrency of 3:
// their calls come from the one poller, never more than 3 at once, and
// every Wait gets its own job's end.
func TestPollerBoundsCallsInFlight(t *testing.T) {
	t.Parallel()
	names := jobNames(40)
	f := newFleet(names, 3)
	r := newRunner(Config{PollMin: time.Millisecond, PollMax: 2 * time.Millisecond, PollConcurrency: 3}.WithDefaults(), f, f)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(names))
	for _, n := range names {
		wg.Go(func() {
			var s runnertest.Sink
			res, err := r.Wait(ctx, waitTask(n), n, &s)
			switch {
			case err != nil:
				errs <- fmt.Errorf("%s: Wait: %w", n, err)
			case res.State != job.Finished:
				errs <- fmt.Errorf("%s: got %s (%s), want %s", n, res.State, res.Reason, job.Finished)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.most > 3 {
		t.Errorf("DescribeTrainingJob calls in flight at once: got %d, want at most 3", f.most)
	}
	for _, n := range names {
		if got := f.describes[n]; got != 3 {
			t.Errorf("%s: got %d DescribeTrainingJob calls, want 3 (two while it trains, one that sees it complete)", n, got)
		}
	}
}

// TestPollerForgetsACanceledWait checks that a Wait whose context ends
// returns at once with that error and that its job is no longer polled,
// while another job goes on being followed to its end.
func TestPollerForgetsACanceledWait(t *testing.T) {
	t.Parallel()
	f := newFleet([]string{"gone-a1", "kept-a1"}, 1<<30)
	r := newRunner(Config{PollMin: time.Millisecond, PollMax: time.Millisecond}.WithDefaults(), f, f)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	kept := make(chan error, 1)
	go func() {
		res, err := r.Wait(ctx, waitTask("kept-a1"), "kept-a1", &runnertest.Sink{})
		if err == nil && res.State != job.Stopped {
			err = fmt.Errorf("got %s, want %s", res.State, job.Stopped)
		}
		kept <- err
	}()
	gone, stop := context.WithCancel(ctx)
	waited := make(chan error, 1)
	go func() {
		_, err := r.Wait(gone, waitTask("gone-a1"), "gone-a1", &runnertest.Sink{})
		waited <- err
	}()
	for f.calls("gone-a1") < 2 {
		if ctx.Err() != nil {
			t.Fatal("gone-a1 was never polled")
		}
		time.Sleep(time.Millisecond)
	}
	stop()
	if err := <-waited; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled Wait: got %v, want context.Canceled", err)
	}
	// Once kept-a1 has been described twice more, a step of gone-a1 that
	// was in flight when Wait returned has ended: no more calls after it.
	after := f.calls("gone-a1")
	for base := f.calls("kept-a1"); f.calls("kept-a1") < base+3; {
		time.Sleep(time.Millisecond)
	}
	if got := f.calls("gone-a1"); got > after+1 {
		t.Errorf("DescribeTrainingJob of the canceled job after its Wait returned: got %d more, want at most 1 (one in flight)", got-after)
	}
	if err := r.Stop(ctx, "kept-a1"); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := <-kept; err != nil {
		t.Errorf("the other job: %v", err)
	}
	// With nothing followed, the poller's loop ends.
	for {
		r.poller.mu.Lock()
		running := r.poller.running
		r.poller.mu.Unlock()
		if !running {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the poller's loop still runs with no job followed")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestStopIsSeenAtOnce checks that after Stop the job is described again
// at once rather than after its poll interval (an hour here).
func TestStopIsSeenAtOnce(t *testing.T) {
	t.Parallel()
	f := newFleet([]string{"j-a1"}, 1<<30)
	r := newRunner(Config{PollMin: time.Hour, PollMax: time.Hour}.WithDefaults(), f, f)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		res, err := r.Wait(ctx, waitTask("j-a1"), "j-a1", &runnertest.Sink{})
		if err == nil && res.State != job.Stopped {
			err = fmt.Errorf("got %s, want %s", res.State, job.Stopped)
		}
		done <- err
	}()
	for f.calls("j-a1") < 1 {
		time.Sleep(time.Millisecond)
	}
	if err := r.Stop(ctx, "j-a1"); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := <-done; err != nil {
		t.Errorf("Wait after Stop: %v", err)
	}
}

// TestLostJobEndsItsWait checks that a job SageMaker does not know ends
// its Wait with runner.ErrLost.
func TestLostJobEndsItsWait(t *testing.T) {
	t.Parallel()
	f := newFleet(nil, 1)
	r := newRunner(Config{}.WithDefaults(), f, f)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if _, err := r.Wait(ctx, waitTask("nope-a1"), "nope-a1", &runnertest.Sink{}); !errors.Is(err, runner.ErrLost) {
		t.Errorf("Wait on an unknown job: got %v, want runner.ErrLost", err)
	}
}

func TestBudget(t *testing.T) {
	t.Parallel()
	b := newBudget(2)
	at := b.at
	if d := b.wait(at); d != 0 {
		t.Errorf("a fresh budget: got a wait of %v, want 0 (a second's worth at once)", d)
	}
	b.spend()
	b.spend()
	b.spend()
	b.at = at // as if the three calls took no time
	b.tokens = -1
	if d := b.wait(at); d != time.Second {
		t.Errorf("2/s, three calls at once: got a wait of %v, want 1s", d)
	}
	if d := b.wait(at.Add(time.Second)); d != 0 {
		t.Errorf("2/s, one second later: got a wait of %v, want 0", d)
	}
	var unlimited *budget
	unlimited.spend()
	if d := unlimited.wait(at); d != 0 {
		t.Errorf("no budget: got a wait of %v, want 0", d)
	}
}

// TestLogCallsStayWithinTheirBudget follows jobs that train without a log
// stream, polled as fast as they may be: their DescribeLogStreams calls
// stay within the budget's rate, while their status is still described
// at its own pace.
func TestLogCallsStayWithinTheirBudget(t *testing.T) {
	t.Parallel()
	names := jobNames(20)
	f := newFleet(names, 40)
	cfg := Config{PollMin: time.Millisecond, PollMax: 2 * time.Millisecond, LogPoll: time.Millisecond, LogPollMax: time.Millisecond,
		DescribeLogStreamsRate: 10}.WithDefaults()
	r := newRunner(cfg, f, f)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for _, n := range names {
		wg.Go(func() {
			if _, err := r.Wait(ctx, waitTask(n), n, &runnertest.Sink{}); err != nil {
				t.Errorf("%s: Wait: %v", n, err)
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	f.mu.Lock()
	defer f.mu.Unlock()
	// A second's worth at once, then 10/s; polls that passed the budget
	// together (one per poller worker) may run it into debt, which later
	// polls wait out; each job's last listing before its end is not held
	// back (its lines must come before its result).
	limit := 10 + int(10*took.Seconds()) + cfg.PollConcurrency + len(names)
	if f.listed > limit {
		t.Errorf("DescribeLogStreams calls in %v: got %d, want at most %d at 10/s", took, f.listed, limit)
	}
	if f.listed == 0 {
		t.Error("DescribeLogStreams calls: got none, want the streams looked for while the jobs train")
	}
	for _, n := range names {
		if got := f.describes[n]; got != 40 {
			t.Errorf("%s: got %d DescribeTrainingJob calls, want 40", n, got)
		}
	}
}

// listingFleet is a fleet that also answers ListTrainingJobs, with each
// job's last modification time and by NameContains (ignoring case), as
// SageMaker does. While busy, every page has a next one, as in an account
// where thousands of other jobs change; while hang is set, each call
// blocks until it is closed.
type listingFleet struct {
	*fleet
	modified map[string]time.Time
	lists    int
	busy     bool
	busyList int // calls answered while busy
	hang     chan struct{}
	contains []string // each call's NameContains
	listed   map[string]int
}

func (f *listingFleet) ListTrainingJobs(_ context.Context, in *sagemaker.ListTrainingJobsInput, _ ...func(*sagemaker.Options)) (*sagemaker.ListTrainingJobsOutput, error) {
	f.mu.Lock()
	hang := f.hang
	f.mu.Unlock()
	if hang != nil {
		<-hang
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	f.contains = append(f.contains, aws.ToString(in.NameContains))
	out := &sagemaker.ListTrainingJobsOutput{}
	if f.busy {
		f.busyList++
		out.NextToken = aws.String("more")
	}
	for name, at := range f.modified {
		if in.LastModifiedTimeAfter != nil && !at.After(*in.LastModifiedTimeAfter) {
			continue
		}
		if in.NameContains != nil && !strings.Contains(strings.ToLower(name), strings.ToLower(*in.NameContains)) {
			continue
		}
		if f.listed == nil {
			f.listed = map[string]int{}
		}
		f.listed[name]++
		s := smtypes.TrainingJobSummary{TrainingJobName: aws.String(name), LastModifiedTime: aws.Time(at),
			TrainingJobStatus: smtypes.TrainingJobStatusInProgress, SecondaryStatus: smtypes.SecondaryStatusTraining}
		if f.left[name] <= 1 {
			s.TrainingJobStatus, s.SecondaryStatus = smtypes.TrainingJobStatusCompleted, smtypes.SecondaryStatusCompleted
		}
		out.TrainingJobSummaries = append(out.TrainingJobSummaries, s)
	}
	return out, nil
}

// finish makes name complete now.
func (f *listingFleet) finish(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.left[name] = 1
	f.modified[name] = time.Now()
}

// TestSweepsFindTheJobsThatChanged follows enough jobs for sweeps, with
// an hour between each job's own describes: a job that completes is still
// seen at once, through the sweep, and the jobs that did not change are
// not described again.
func TestSweepsFindTheJobsThatChanged(t *testing.T) {
	t.Parallel()
	names := jobNames(sweepMin + 10)
	f := &listingFleet{fleet: newFleet(names, 1<<30), modified: map[string]time.Time{}}
	created := time.Now().Add(-time.Hour)
	for _, n := range names {
		f.modified[n] = created
	}
	r := newRunner(Config{PollMin: time.Hour, PollMax: time.Hour, SweepEvery: time.Millisecond}.WithDefaults(), f, f)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	rest, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	ended := make(chan runner.Result, 1)
	for i, n := range names {
		c := rest
		if i == 0 {
			c = ctx
		}
		wg.Go(func() {
			res, err := r.Wait(c, waitTask(n), n, &runnertest.Sink{})
			if i == 0 {
				if err != nil {
					t.Errorf("%s: Wait: %v", n, err)
				}
				ended <- res
			}
		})
	}
	// Every job described once, then a sweep after that.
	for {
		f.mu.Lock()
		described, lists := len(f.describes), f.lists
		f.mu.Unlock()
		if described == len(names) && lists >= 2 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("%d of %d jobs described, %d sweeps, before the test's deadline", described, len(names), lists)
		}
		time.Sleep(time.Millisecond)
	}
	f.finish(names[0])
	if res := <-ended; res.State != job.Finished {
		t.Errorf("%s: got %s (%s), want %s", names[0], res.State, res.Reason, job.Finished)
	}
	stop()
	wg.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	if got := f.describes[names[0]]; got != 2 {
		t.Errorf("%s: got %d DescribeTrainingJob calls, want 2 (the first, then the one the sweep asked for)", names[0], got)
	}
	for _, n := range names[1:] {
		if got := f.describes[n]; got != 1 {
			t.Errorf("%s: got %d DescribeTrainingJob calls, want 1: unchanged jobs are not described again", n, got)
		}
	}
}

// deniedFleet is a fleet whose ListTrainingJobs is refused, as for a role
// without sagemaker:ListTrainingJobs.
type deniedFleet struct{ *fleet }

func (deniedFleet) ListTrainingJobs(context.Context, *sagemaker.ListTrainingJobsInput, ...func(*sagemaker.Options)) (*sagemaker.ListTrainingJobsOutput, error) {
	return nil, &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "not authorized to perform: sagemaker:ListTrainingJobs"}
}

// TestJobsPollOnTheirOwnWithoutSweeps checks that when sweeps are refused,
// every job is still followed to its end by its own describes, and the log
// says why once.
func TestJobsPollOnTheirOwnWithoutSweeps(t *testing.T) {
	t.Parallel()
	names := jobNames(sweepMin + 5)
	f := deniedFleet{newFleet(names, 20)}
	var logs strings.Builder
	cfg := Config{PollMin: time.Millisecond, PollMax: 2 * time.Millisecond, SweepEvery: time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))}.WithDefaults()
	r := newRunner(cfg, f, f)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, n := range names {
		wg.Go(func() {
			if res, err := r.Wait(ctx, waitTask(n), n, &runnertest.Sink{}); err != nil || res.State != job.Finished {
				t.Errorf("%s: got %s, %v; want %s", n, res.State, err, job.Finished)
			}
		})
	}
	wg.Wait()
	if got := strings.Count(logs.String(), "cannot list training jobs"); got != 1 {
		t.Errorf("warnings about ListTrainingJobs: got %d, want 1; log:\n%s", got, logs.String())
	}
}

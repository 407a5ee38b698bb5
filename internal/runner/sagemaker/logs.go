package sagemaker

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"

	"github.com/slipway-ml/slipway/internal/runner"
)

// LogGroup is where SageMaker training jobs log; each host writes the
// stream <TrainingJobName>/algo-<n>-<epoch>.
const LogGroup = "/aws/sagemaker/TrainingJobs"

// logFollower copies a training job's CloudWatch log streams into a Sink:
// every stream under the job's prefix, new ones as they appear, each read
// on from its forward token.
//
// It has no goroutine of its own: Wait polls it between two
// DescribeTrainingJob calls, and only while the job trains or uploads (no
// host logs before that), since CloudWatch Logs' quotas are per account
// and a few tens of calls a second at most. Its reads back off while
// nothing new arrives, and it lists the job's streams (DescribeLogStreams)
// only until every host's stream is known, after a status change (a
// restarted host writes a new stream) and once in a long while.
type logFollower struct {
	r         *Runner
	log       func() *slog.Logger // the job's logger, made at each use
	name      string
	sink      runner.Sink
	multiHost bool              // prefix lines with their host
	hosts     int               // streams to expect: one per instance
	tokens    map[string]string // stream name -> next forward token; nil until one is found
	order     []string          // streams in the order they were found

	wait       *backoff  // between polls; reset when lines arrive
	next       time.Time // when the next poll is due; zero: at once
	discoverAt time.Time // when the streams are listed again though all are known
}

func newLogFollower(r *Runner, log func() *slog.Logger, name string, sink runner.Sink, hosts int) *logFollower {
	return &logFollower{r: r, log: log, name: name, sink: sink, multiHost: hosts > 1, hosts: max(hosts, 1),
		wait: newBackoff(r.cfg.LogPoll, r.cfg.LogPollMax)}
}

// statusChanged makes the next poll come at once, list the streams again
// and start its backoff over: a job that starts training or restarts
// begins writing streams.
func (f *logFollower) statusChanged() {
	f.next, f.discoverAt = time.Time{}, time.Time{}
	f.wait.reset()
}

// due reports whether a poll is due at now.
func (f *logFollower) due(now time.Time) bool { return !now.Before(f.next) }

// poll lists the streams when needed, reads every known stream to its
// current end, and sets when the next poll is due: LogPoll after new
// lines, longer and longer while none come (up to LogPollMax, or PollMax
// while the job has no stream yet).
func (f *logFollower) poll(ctx context.Context, now time.Time) {
	got := f.pollOnce(ctx, len(f.order) < f.hosts || !now.Before(f.discoverAt))
	if got > 0 {
		f.wait.reset()
	}
	if len(f.order) == 0 {
		f.wait.max = max(f.r.cfg.PollMax, f.r.cfg.LogPollMax)
	} else {
		f.wait.max = f.r.cfg.LogPollMax
	}
	f.next = time.Now().Add(f.wait.next())
}

// drain lists the streams and reads them all to their end: the job has
// ended, and its last lines must reach the sink before its result.
func (f *logFollower) drain(ctx context.Context) { f.pollOnce(ctx, true) }

// pollOnce finds new streams when discover is set and reads every stream to
// its current end, returning how many events it read. Throttling is
// retried; other errors are logged and the round cut short: the next one
// tries again.
func (f *logFollower) pollOnce(ctx context.Context, discover bool) int {
	if discover {
		if err := f.discover(ctx); err != nil {
			if ctx.Err() == nil {
				f.log().Debug("listing log streams", "err", err)
			}
			return 0
		}
		if len(f.order) >= f.hosts {
			f.discoverAt = time.Now().Add(f.r.rediscover)
		}
	}
	got := 0
	for _, st := range f.order {
		n, err := f.read(ctx, st)
		got += n
		if err != nil {
			if ctx.Err() == nil {
				f.log().Debug("reading log stream", "stream", st, "err", err)
			}
			break
		}
	}
	return got
}

// discover adds the job's streams not seen yet, following pagination.
func (f *logFollower) discover(ctx context.Context) error {
	in := &cloudwatchlogs.DescribeLogStreamsInput{
		LogGroupName:        aws.String(LogGroup),
		LogStreamNamePrefix: aws.String(f.name + "/"),
	}
	if f.r.logPage > 0 {
		in.Limit = aws.Int32(min(f.r.logPage, 50))
	}
	var found []string
	for {
		var out *cloudwatchlogs.DescribeLogStreamsOutput
		err := f.r.retry(ctx, f.log(), "DescribeLogStreams", func() error {
			var err error
			out, err = f.r.logs.DescribeLogStreams(ctx, in)
			return err
		})
		if err != nil {
			if errorCode(err) == "ResourceNotFoundException" {
				return nil // no job has logged yet: no group
			}
			return err
		}
		for _, s := range out.LogStreams {
			if n := aws.ToString(s.LogStreamName); n != "" {
				if _, ok := f.tokens[n]; !ok {
					found = append(found, n)
				}
			}
		}
		if out.NextToken == nil || aws.ToString(out.NextToken) == aws.ToString(in.NextToken) {
			break
		}
		in.NextToken = out.NextToken
	}
	slices.Sort(found)
	if len(found) > 0 && f.tokens == nil {
		f.tokens = map[string]string{}
	}
	for _, n := range found {
		f.tokens[n] = ""
		f.order = append(f.order, n)
	}
	return nil
}

// read copies one stream's new events to the sink, page by page, until
// the forward token stops moving, and returns how many it copied.
func (f *logFollower) read(ctx context.Context, stream string) (int, error) {
	prefix := ""
	if f.multiHost {
		prefix = "[" + hostOf(f.name, stream) + "] "
	}
	got := 0
	for {
		in := &cloudwatchlogs.GetLogEventsInput{
			LogGroupName:  aws.String(LogGroup),
			LogStreamName: aws.String(stream),
			StartFromHead: aws.Bool(true),
		}
		if f.r.logPage > 0 {
			in.Limit = aws.Int32(f.r.logPage)
		}
		if tok := f.tokens[stream]; tok != "" {
			in.NextToken = aws.String(tok)
		}
		var out *cloudwatchlogs.GetLogEventsOutput
		err := f.r.retry(ctx, f.log(), "GetLogEvents", func() error {
			var err error
			out, err = f.r.logs.GetLogEvents(ctx, in)
			return err
		})
		if err != nil {
			return got, err
		}
		got += len(out.Events)
		for _, ev := range out.Events {
			for _, line := range strings.Split(strings.TrimRight(aws.ToString(ev.Message), "\n"), "\n") {
				f.sink.Log("stdout", prefix+strings.TrimSuffix(line, "\r"))
			}
		}
		next := aws.ToString(out.NextForwardToken)
		if next == "" || next == f.tokens[stream] {
			return got, nil
		}
		f.tokens[stream] = next
		if len(out.Events) == 0 {
			return got, nil
		}
	}
}

// hostOf returns the host (algo-N) that wrote a stream named
// <job>/algo-N-<epoch>.
func hostOf(job, stream string) string {
	rest := strings.TrimPrefix(stream, job+"/")
	if i := strings.LastIndex(rest, "-"); i > 0 && strings.HasPrefix(rest, "algo-") && strings.Count(rest, "-") >= 2 {
		return rest[:i]
	}
	return rest
}

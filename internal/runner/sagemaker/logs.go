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
type logFollower struct {
	r         *Runner
	log       *slog.Logger
	name      string
	sink      runner.Sink
	multiHost bool              // prefix lines with their host
	tokens    map[string]string // stream name -> next forward token
	order     []string          // streams in the order they were found
}

// run reads the streams every LogPoll until finished is closed, then once
// more to drain what is left, or until ctx ends.
func (f *logFollower) run(ctx context.Context, finished <-chan struct{}) {
	f.tokens = map[string]string{}
	for {
		select {
		case <-finished:
			f.poll(ctx)
			return
		default:
		}
		f.poll(ctx)
		t := time.NewTimer(jitter(f.r.cfg.LogPoll))
		select {
		case <-finished:
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
		if ctx.Err() != nil {
			return
		}
	}
}

// poll finds new streams and reads every stream to its current end.
// Throttling is retried; other errors are logged and the round skipped:
// the next one tries again.
func (f *logFollower) poll(ctx context.Context) {
	if err := f.discover(ctx); err != nil {
		if ctx.Err() == nil {
			f.log.Debug("listing log streams", "err", err)
		}
		return
	}
	for _, st := range f.order {
		if err := f.read(ctx, st); err != nil {
			if ctx.Err() == nil {
				f.log.Debug("reading log stream", "stream", st, "err", err)
			}
			return
		}
	}
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
		err := f.r.retry(ctx, f.log, "DescribeLogStreams", func() error {
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
	for _, n := range found {
		f.tokens[n] = ""
		f.order = append(f.order, n)
	}
	return nil
}

// read copies one stream's new events to the sink, page by page, until
// the forward token stops moving.
func (f *logFollower) read(ctx context.Context, stream string) error {
	prefix := ""
	if f.multiHost {
		prefix = "[" + hostOf(f.name, stream) + "] "
	}
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
		err := f.r.retry(ctx, f.log, "GetLogEvents", func() error {
			var err error
			out, err = f.r.logs.GetLogEvents(ctx, in)
			return err
		})
		if err != nil {
			return err
		}
		for _, ev := range out.Events {
			for _, line := range strings.Split(strings.TrimRight(aws.ToString(ev.Message), "\n"), "\n") {
				f.sink.Log("stdout", prefix+strings.TrimSuffix(line, "\r"))
			}
		}
		next := aws.ToString(out.NextForwardToken)
		if next == "" || next == f.tokens[stream] {
			return nil
		}
		f.tokens[stream] = next
		if len(out.Events) == 0 {
			return nil
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

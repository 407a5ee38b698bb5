// Package sagemaker runs jobs as AWS SageMaker training jobs: it turns a
// job attempt and its queue's CreateTrainingJob body into a request
// (BuildRequest), submits it, follows DescribeTrainingJob and the job's
// CloudWatch log streams to the end, and stops it with StopTrainingJob.
//
// Credentials, region and endpoints come from the AWS SDK's default chain
// (environment, shared profile, SSO, IMDS; AWS_ENDPOINT_URL and
// AWS_ENDPOINT_URL_<SERVICE>), so the same runner talks to AWS and to the
// local endpoint of internal/localaws. Only this package imports the SDK's
// SageMaker and CloudWatch Logs clients, through the narrow sagemakerAPI and
// logsAPI interfaces.
package sagemaker

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/sagemaker"
	"github.com/aws/smithy-go/middleware"

	"github.com/slipway-ml/slipway/internal/config"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/runner"
)

// sagemakerAPI is the part of the SageMaker client the runner calls.
type sagemakerAPI interface {
	CreateTrainingJob(ctx context.Context, in *sagemaker.CreateTrainingJobInput, opts ...func(*sagemaker.Options)) (*sagemaker.CreateTrainingJobOutput, error)
	DescribeTrainingJob(ctx context.Context, in *sagemaker.DescribeTrainingJobInput, opts ...func(*sagemaker.Options)) (*sagemaker.DescribeTrainingJobOutput, error)
	StopTrainingJob(ctx context.Context, in *sagemaker.StopTrainingJobInput, opts ...func(*sagemaker.Options)) (*sagemaker.StopTrainingJobOutput, error)
}

// tagLister is the optional ListTags call used to check a job's tags after
// ResourceInUse; DescribeTrainingJob does not return them.
type tagLister interface {
	ListTags(ctx context.Context, in *sagemaker.ListTagsInput, opts ...func(*sagemaker.Options)) (*sagemaker.ListTagsOutput, error)
}

// logsAPI is the part of the CloudWatch Logs client the runner calls.
type logsAPI interface {
	DescribeLogStreams(ctx context.Context, in *cloudwatchlogs.DescribeLogStreamsInput, opts ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.DescribeLogStreamsOutput, error)
	GetLogEvents(ctx context.Context, in *cloudwatchlogs.GetLogEventsInput, opts ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.GetLogEventsOutput, error)
}

// Config sets up a Runner. The zero value works where the SDK's default
// chain finds a region and credentials.
type Config struct {
	// Region is the AWS region (the agent config's environment.region).
	// Default: the SDK chain (AWS_REGION, AWS_DEFAULT_REGION, the profile).
	Region string
	// Profile is the shared config profile. Default: AWS_PROFILE, else "default".
	Profile string
	// Endpoint, when set, is the base endpoint of every service (for
	// instance a local endpoint). Default: the SDK chain, which honours
	// AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE>.
	Endpoint string
	// Logger receives the runner's own messages. Default: discarded.
	Logger *slog.Logger
	// PollMin and PollMax bound the DescribeTrainingJob polling interval:
	// it starts at PollMin, grows while nothing changes, and is jittered so
	// that many jobs spread their calls. Defaults 5s and 60s.
	PollMin, PollMax time.Duration
	// LogPoll is how often a training job's CloudWatch log streams are
	// read while it trains and new lines keep coming. Default 5s.
	LogPoll time.Duration
	// LogPollMax caps the read interval, which doubles from LogPoll while
	// no new line arrives (a job that has no log stream yet is looked for
	// up to PollMax apart). Default min(30s, PollMax), at least LogPoll.
	LogPollMax time.Duration
	// Queues looks up the queue a job was enqueued on, for its config.
	// Required by Start unless the runner is bound to a queue (ForQueue).
	Queues func(ctx context.Context, name string) (job.Queue, error)
	// PollConcurrency bounds the DescribeTrainingJob and CloudWatch Logs
	// calls in flight for all the jobs the runner follows: one poller makes
	// them for every job. Default 16.
	PollConcurrency int
	// SweepEvery is how often, while at least 50 jobs are followed, one
	// paged ListTrainingJobs call (at most a page a second, under the
	// account's 2/s) lists the jobs modified lately: a job that trains is
	// then described only when the list shows it changed, and every
	// 5 × PollMax, instead of every PollMax. The list asks only for names
	// containing what every followed job's name shares (the "-a<attempt>"
	// suffix at least). A sweep that would need more than 20 pages pauses
	// sweeps, from about 5 × PollMax doubling up to an hour, and the jobs
	// poll on their own meanwhile, as whenever sweeps are not fresh.
	// Default PollMax/6; negative: never, every job polls on its own.
	SweepEvery time.Duration
	// DescribeLogStreamsRate and GetLogEventsRate bound those CloudWatch
	// Logs calls, in calls a second for every job the runner follows
	// together: a job whose logs come due while the budget is spent reads
	// them later, backing off. CloudWatch Logs' quotas are per account and
	// region (by default 5/s and 25/s; see Service Quotas), and shared with
	// everything else in the account. Defaults 4 and 20; negative: no limit.
	DescribeLogStreamsRate, GetLogEventsRate float64
	// APIOptions are added to the SDK clients' middleware stacks, for
	// instance metrics.Default.AWSAPIOptions() to count calls and
	// throttles. Default: none.
	APIOptions []func(*middleware.Stack) error
}

// WithDefaults returns c with every unset field at its default.
func (c Config) WithDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.PollMin == 0 {
		c.PollMin = 5 * time.Second
	}
	if c.PollMax == 0 {
		c.PollMax = max(60*time.Second, c.PollMin)
	}
	if c.LogPoll == 0 {
		c.LogPoll = 5 * time.Second
	}
	if c.SweepEvery == 0 {
		c.SweepEvery = c.PollMax / 6
	}
	if c.DescribeLogStreamsRate == 0 {
		c.DescribeLogStreamsRate = 4
	}
	if c.GetLogEventsRate == 0 {
		c.GetLogEventsRate = 20
	}
	if c.PollConcurrency == 0 {
		c.PollConcurrency = 16
	}
	if c.LogPollMax == 0 {
		c.LogPollMax = max(min(30*time.Second, c.PollMax), c.LogPoll)
	}
	return c
}

// Validate reports a config that cannot work.
func (c Config) Validate() error {
	if c.PollMin < 0 || c.PollMax < c.PollMin || c.LogPoll < 0 || c.LogPollMax < c.LogPoll {
		return fmt.Errorf("%w: sagemaker runner: want 0 <= PollMin <= PollMax and 0 <= LogPoll <= LogPollMax", job.ErrInvalid)
	}
	if c.PollConcurrency < 0 {
		return fmt.Errorf("%w: sagemaker runner: PollConcurrency %d: want at least 1", job.ErrInvalid, c.PollConcurrency)
	}
	return nil
}

// Runner runs jobs as SageMaker training jobs. It is safe for concurrent use.
//
// It is a small handle on what it shares with the runners ForQueue binds to
// a queue: an agent keeps one of those for each job it follows, and calls
// their methods directly, with no wrapper's frame on the stack of the
// goroutine that waits.
type Runner struct {
	*shared
	queue *job.Queue // set by ForQueue
}

// shared is what a Runner and the runners its ForQueue makes share.
type shared struct {
	cfg  Config
	log  *slog.Logger
	sm   sagemakerAPI
	logs logsAPI
	// logPage bounds the streams and events asked for per CloudWatch Logs
	// call; 0 leaves the service's default. Tests lower it to page.
	logPage int32
	// rediscover is how long a job's log streams go unlisted once every
	// host's is known: a safety net, since the status changes that bring
	// new streams (a restart) list them at once anyway. 5 × PollMax.
	rediscover time.Duration
	// poller follows every job this runner and its ForQueue runners wait on.
	poller *poller
	// pageGap is the pause between two pages of a sweep (sweepPageGap);
	// tests shorten it.
	pageGap time.Duration
	// budgets bound the rate of the calls named, for all of those jobs.
	budgets map[string]*budget

	boundMu sync.Mutex
	bound   map[string]*Runner // the last made by ForQueue, by queue name
}

var _ runner.Runner = (*Runner)(nil)

// New loads the AWS configuration from the default chain and returns a
// runner. It fails when no region is configured anywhere.
func New(ctx context.Context, cfg Config) (*Runner, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts := []func(*awsconfig.LoadOptions) error{
		// Throttling is retried by the runner with its own jittered backoff,
		// so the SDK's retry quota must not turn a burst into hard errors.
		awsconfig.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) { o.RateLimiter = ratelimit.None })
		}),
	}
	if cfg.Endpoint != "" {
		opts = append(opts, awsconfig.WithBaseEndpoint(cfg.Endpoint))
	}
	awsCfg, err := config.Environment{Region: cfg.Region, Profile: cfg.Profile}.AWS(ctx, opts...)
	if err != nil {
		return nil, err
	}
	if awsCfg.Region == "" {
		return nil, fmt.Errorf("%w: no AWS region: set environment.region in the agent config, or AWS_REGION, or a region in the AWS profile", job.ErrInvalid)
	}
	awsCfg.APIOptions = append(awsCfg.APIOptions, cfg.APIOptions...)
	return newRunner(cfg, sagemaker.NewFromConfig(awsCfg), cloudwatchlogs.NewFromConfig(awsCfg)), nil
}

func newRunner(cfg Config, sm sagemakerAPI, logs logsAPI) *Runner {
	r := &Runner{shared: &shared{cfg: cfg, log: cfg.Logger, sm: sm, logs: logs, rediscover: 5 * cfg.PollMax, pageGap: sweepPageGap,
		poller: newPoller(cfg.PollConcurrency, cfg.Logger), budgets: map[string]*budget{
			"DescribeLogStreams": newBudget(cfg.DescribeLogStreamsRate),
			"GetLogEvents":       newBudget(cfg.GetLogEventsRate),
		}}}
	if _, ok := sm.(trainingJobLister); ok && cfg.SweepEvery > 0 {
		p := r.poller
		p.sweep, p.sweepEvery, p.slowCheck, p.pollMax = r.sweep, cfg.SweepEvery, 5*cfg.PollMax, cfg.PollMax
		p.stale = 3*cfg.SweepEvery + sweepPages*r.pageGap
		p.pause = newBackoff(p.slowCheck, max(sweepPauseMax, p.slowCheck))
	}
	return r
}

// ForQueue returns a runner that shares r's clients and poller and builds
// its requests from q's config, without asking Config.Queues. Jobs of one
// queue whose config has not changed share one runner: each claim brings a
// copy of its queue, and an agent following thousands of jobs would
// otherwise keep thousands of copies of the same config.
func (r *Runner) ForQueue(q job.Queue) *Runner {
	r.boundMu.Lock()
	defer r.boundMu.Unlock()
	if b := r.bound[q.Name]; b != nil && sameQueue(b.queue, &q) {
		return b
	}
	b := &Runner{shared: r.shared, queue: &q}
	if r.bound == nil {
		r.bound = map[string]*Runner{}
	}
	r.bound[q.Name] = b
	return b
}

// sameQueue reports whether b is the queue a was bound to, unchanged: the
// stores stamp updated_at at every change of a queue's settings, and a
// queue deleted and made again has another created_at. A queue without
// its times (not read from a store) is never taken for another.
func sameQueue(a, b *job.Queue) bool {
	return !a.UpdatedAt.IsZero() && a.Name == b.Name && a.CreatedAt.Equal(b.CreatedAt) && a.UpdatedAt.Equal(b.UpdatedAt)
}

// queueOf returns the queue of t's job.
func (r *Runner) queueOf(ctx context.Context, t runner.Task) (job.Queue, error) {
	if r.queue != nil && r.queue.Name == t.Job.Queue {
		return *r.queue, nil
	}
	if r.cfg.Queues == nil {
		return job.Queue{}, fmt.Errorf("looking up queue %s: the sagemaker runner has no Queues lookup", t.Job.Queue)
	}
	q, err := r.cfg.Queues(ctx, t.Job.Queue)
	if err != nil {
		return job.Queue{}, fmt.Errorf("looking up queue %s: %w", t.Job.Queue, err)
	}
	return q, nil
}

// Start submits t as a training job and returns its TrainingJobName. A job
// of that name that is already there is adopted when its tags and
// environment show it is this attempt's; else Start fails with
// job.ErrConflict. Throttling is retried until ctx ends.
func (r *Runner) Start(ctx context.Context, t runner.Task) (string, error) {
	q, err := r.queueOf(ctx, t)
	if err != nil {
		return "", err
	}
	req, err := BuildRequest(q, t)
	if err != nil {
		return "", err
	}
	name := aws.ToString(req.Input.TrainingJobName)
	log := r.log.With("job", t.Job.ID, "queue", t.Job.Queue, "attempt", t.Job.Attempt, "training_job", name)
	err = r.retry(ctx, log, "CreateTrainingJob", func() error {
		_, err := r.sm.CreateTrainingJob(ctx, req.Input)
		return err
	})
	switch {
	case err == nil:
		log.Info("training job created")
		return name, nil
	case errorCode(err) == "ResourceInUse":
		if err := r.adopt(ctx, log, t, name); err != nil {
			return "", err
		}
		log.Info("training job already there: adopted")
		return name, nil
	case errorCode(err) == "ValidationException":
		return "", fmt.Errorf("creating training job %s: %w: %w", name, job.ErrInvalid, err)
	}
	return "", fmt.Errorf("creating training job %s: %w", name, err)
}

// adopt checks that the existing training job name belongs to t's attempt.
func (r *Runner) adopt(ctx context.Context, log *slog.Logger, t runner.Task, name string) error {
	out, err := r.describe(ctx, log, name)
	if err != nil {
		return fmt.Errorf("describing existing training job %s: %w", name, err)
	}
	attempt := strconv.Itoa(t.Job.Attempt)
	owned := out.Environment[runner.EnvJobID] == t.Job.ID && out.Environment[runner.EnvAttempt] == attempt
	if tl, ok := r.sm.(tagLister); ok && owned && out.TrainingJobArn != nil {
		var tags *sagemaker.ListTagsOutput
		err := r.retry(ctx, log, "ListTags", func() error {
			var err error
			tags, err = tl.ListTags(ctx, &sagemaker.ListTagsInput{ResourceArn: out.TrainingJobArn})
			return err
		})
		switch {
		case err == nil:
			got := map[string]string{}
			for _, tag := range tags.Tags {
				got[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
			}
			owned = got[TagJobID] == t.Job.ID && got[TagAttempt] == attempt
		case errorCode(err) == "UnknownOperationException":
			// An endpoint without ListTags: the environment is the proof.
		default:
			return fmt.Errorf("listing tags of training job %s: %w", name, err)
		}
	}
	if !owned {
		return fmt.Errorf("%w: training job name %s is taken by a job that is not job %s attempt %d (its %s tag and environment differ); set another TrainingJobName in the queue config",
			job.ErrConflict, name, t.Job.ID, t.Job.Attempt, TagJobID)
	}
	return nil
}

// Stop asks SageMaker to stop the training job; one that has already ended
// is fine. Wait then returns with job.Stopped.
func (r *Runner) Stop(ctx context.Context, externalID string) error {
	log := r.log.With("training_job", externalID)
	err := r.retry(ctx, log, "StopTrainingJob", func() error {
		_, err := r.sm.StopTrainingJob(ctx, &sagemaker.StopTrainingJobInput{TrainingJobName: aws.String(externalID)})
		return err
	})
	switch {
	case err == nil:
		log.Info("training job stop requested")
		r.poller.hurry(externalID)
		return nil
	case notFound(err):
		return fmt.Errorf("stopping training job %s: %w", externalID, runner.ErrLost)
	case errorCode(err) == "ValidationException":
		// SageMaker refuses to stop a job that is no longer in progress.
		log.Info("training job not stoppable: already ended", "err", err)
		return nil
	}
	return fmt.Errorf("stopping training job %s: %w", externalID, err)
}

// describe calls DescribeTrainingJob, retrying throttling and transient
// errors until ctx ends.
func (r *Runner) describe(ctx context.Context, log *slog.Logger, name string) (*sagemaker.DescribeTrainingJobOutput, error) {
	var out *sagemaker.DescribeTrainingJobOutput
	err := r.retry(ctx, log, "DescribeTrainingJob", func() error {
		var err error
		out, err = r.sm.DescribeTrainingJob(ctx, &sagemaker.DescribeTrainingJobInput{TrainingJobName: aws.String(name)})
		return err
	})
	if err != nil {
		if notFound(err) {
			return nil, fmt.Errorf("describing training job %s: %w: %w", name, runner.ErrLost, err)
		}
		return nil, err
	}
	return out, nil
}

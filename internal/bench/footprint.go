package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
)

// FootprintConfig is one footprint run.
type FootprintConfig struct {
	// Jobs is how many SageMaker jobs the agent tracks at once. Default 1000.
	Jobs int
	// Window is how long the API calls are counted once every job is
	// tracked. Default 60s.
	Window time.Duration
	// PollMin, PollMax and LogPoll are the SageMaker runner's; zero keeps
	// the runner's defaults (5s, 60s, 5s), the ones an agent runs with.
	PollMin, PollMax, LogPoll time.Duration
}

// Footprint is what one footprint run saw.
type Footprint struct {
	Jobs int `json:"jobs"`
	// IdleMB and TrackingMB are the agent process's resident memory
	// (VmRSS), idle and while it tracks Jobs training jobs: the median of
	// the samples in IdleSamplesMB and TrackingSamplesMB, taken once a
	// second. The agent runs in a process of its own; the server, its
	// store and the stand-in endpoint are in the measuring process.
	IdleMB, TrackingMB               float64
	IdleSamplesMB, TrackingSamplesMB []float64
	// IdleAnonMB and TrackingAnonMB are the anonymous part of the same
	// (RssAnon, medians): the agent's own memory, without the pages of its
	// executable that it maps from the file.
	IdleAnonMB, TrackingAnonMB float64
	// IdleGoMB and TrackingGoMB are the agent's Go heap and stacks in use,
	// from its metrics, at the end of each phase.
	IdleGoMB, TrackingGoMB float64
	// TrackingStackMB is the part of TrackingGoMB in goroutine stacks.
	TrackingStackMB float64
	Goroutines      int
	// TrackingAnonSamplesMB are the RssAnon samples TrackingAnonMB is the
	// median of.
	TrackingAnonSamplesMB []float64
	// FilePMDMB is how much of the executable's resident pages were mapped
	// as 2 MB huge pages at the end (FilePmdMapped): the kernel's page cache
	// folios, which differ between runs of the same build.
	FilePMDMB float64
	// FileMB is the agent's file-backed resident memory at the end of
	// Window (mostly its executable's pages), and TouchedFileMB the part of
	// it the agent accessed during Window: what it runs, against what its
	// start and the kernel's fault-around mapped. Zero when the kernel does
	// not say (clear_refs and smaps' Referenced).
	FileMB, TouchedFileMB float64
	// CPUSeconds is the agent process's CPU time (user and system) over
	// Window.
	CPUSeconds float64
	// Window is how long the calls were counted; Calls and Throttled are
	// the stand-in endpoint's counts over it, by operation.
	Window    time.Duration
	Calls     map[string]int
	Throttled map[string]int
}

// PerJobPerMinute is how many calls of op each tracked job made a minute.
func (f Footprint) PerJobPerMinute(op string) float64 {
	if f.Jobs == 0 || f.Window <= 0 {
		return 0
	}
	return float64(f.Calls[op]) / float64(f.Jobs) / f.Window.Minutes()
}

// PerSecond is how many calls of op the whole agent made a second.
func (f Footprint) PerSecond(op string) float64 {
	if f.Window <= 0 {
		return 0
	}
	return float64(f.Calls[op]+f.Throttled[op]) / f.Window.Seconds()
}

// AccountLimits are the SageMaker quotas (calls per second) the stand-in
// applies during the counting window: CreateTrainingJob 1/s and
// ListTrainingJobs 2/s.
var AccountLimits = map[string]float64{"CreateTrainingJob": 1, "ListTrainingJobs": 2}

// benchQueueConfig is DESIGN.md's default CreateTrainingJob body, filled in.
const benchQueueConfig = `{"RoleArn": "arn:aws:iam::000000000000:role/SageMakerRole", "EcrRepoName": "",
 "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
 "OutputDataConfig": {"S3OutputPath": "s3://bench/out"},
 "StoppingCondition": {"MaxRuntimeInSeconds": 86400}}`

// MeasureFootprint runs one agent, in a process of its own, against the
// stand-in endpoint: it samples the agent's memory idle, makes it track
// cfg.Jobs training jobs that stay InProgress, counts its API calls over
// cfg.Window while sampling its memory once a second.
func MeasureFootprint(ctx context.Context, cfg FootprintConfig, o Options) (Footprint, error) {
	o = o.withDefaults()
	if cfg.Jobs <= 0 {
		cfg.Jobs = 1000
	}
	if cfg.Window <= 0 {
		cfg.Window = time.Minute
	}
	useLocalCredentials()
	sm, err := StartStandIn()
	if err != nil {
		return Footprint{}, err
	}
	defer sm.Close()
	s, err := startStack(ctx, "", o.Logger)
	if err != nil {
		return Footprint{}, err
	}
	defer s.Close()
	const q = "sm-bench"
	if err := s.queue(ctx, api.CreateQueue{Name: q, Resource: job.SageMaker, Config: json.RawMessage(benchQueueConfig)}); err != nil {
		return Footprint{}, err
	}
	p, err := startAgentProc(s.URL, q, sm.URL(), cfg)
	if err != nil {
		return Footprint{}, err
	}
	defer p.stop()

	f := Footprint{Jobs: cfg.Jobs, Window: cfg.Window}
	// Once its metrics answer, the agent is up and long-polling its queue.
	if _, _, _, err = p.goStats(ctx); err != nil {
		return f, err
	}
	var anon []float64
	if f.IdleSamplesMB, anon, err = sampleRSS(ctx, p, 3*time.Second); err != nil {
		return f, err
	}
	f.IdleMB, f.IdleAnonMB = median(f.IdleSamplesMB), median(anon)
	heap, stack, _, err := p.goStats(ctx)
	if err != nil {
		return f, err
	}
	f.IdleGoMB = heap + stack

	// All but one job go straight into the store; the last one goes through
	// the API, whose enqueue wakes the agent's waiting claim.
	spec := job.Spec{Image: "bench/train:1", Entrypoint: []string{"python", "train.py"}}
	if err := fillSpec(ctx, s.Store, q, cfg.Jobs-1, spec); err != nil {
		return f, err
	}
	if _, err := s.Client.Enqueue(ctx, api.Enqueue{Queue: q, Spec: spec}); err != nil {
		return f, fmt.Errorf("enqueueing: %w", err)
	}
	if err := waitRunning(ctx, s.Store, q, cfg.Jobs, p); err != nil {
		return f, fmt.Errorf("waiting for %d training jobs to be tracked (the stand-in created %d): %w", cfg.Jobs, sm.Created(), err)
	}
	sm.Reset()
	for op, l := range AccountLimits {
		sm.Limit(op, l)
	}
	cpu0, err := p.cpuSeconds(ctx)
	if err != nil {
		return f, err
	}
	forgot := p.forgetAccesses() == nil
	if f.TrackingSamplesMB, f.TrackingAnonSamplesMB, err = sampleRSS(ctx, p, cfg.Window); err != nil {
		return f, err
	}
	f.Calls, f.Throttled = sm.Calls(), sm.Throttled()
	f.TrackingMB, f.TrackingAnonMB = median(f.TrackingSamplesMB), median(f.TrackingAnonSamplesMB)
	cpu1, err := p.cpuSeconds(ctx)
	if err != nil {
		return f, err
	}
	f.CPUSeconds = cpu1 - cpu0
	f.FilePMDMB = p.filePMDMB()
	if forgot {
		f.FileMB, f.TouchedFileMB = p.fileMB()
	}
	heap, stack, n, err := p.goStats(ctx)
	if err != nil {
		return f, err
	}
	f.TrackingGoMB, f.TrackingStackMB, f.Goroutines = heap+stack, stack, n
	return f, nil
}

// sampleRSS reads the agent's resident memory and its anonymous part once
// a second for d (at least once).
func sampleRSS(ctx context.Context, p *agentProc, d time.Duration) (rss, anon []float64, err error) {
	end := time.Now().Add(d)
	for {
		r, a, err := p.memMB()
		if err != nil {
			return rss, anon, err
		}
		rss, anon = append(rss, r), append(anon, a)
		left := time.Until(end)
		if left <= 0 {
			return rss, anon, nil
		}
		if err := pause(ctx, min(left, time.Second)); err != nil {
			return rss, anon, err
		}
	}
}

func median(v []float64) float64 { return summarize(Result{}, v).Median }

// useLocalCredentials gives the AWS SDK's default chain fixed credentials
// and no shared config or instance metadata: the benchmarks talk only to
// endpoints they started on loopback, and the machine's AWS setup (an SSO
// profile, say) must neither slow them nor be sent anywhere.
func useLocalCredentials() {
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "AKIDBENCH", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_SESSION_TOKEN": "",
		"AWS_CONFIG_FILE": os.DevNull, "AWS_SHARED_CREDENTIALS_FILE": os.DevNull, "AWS_PROFILE": "",
		"AWS_EC2_METADATA_DISABLED": "true",
	} {
		os.Setenv(k, v)
	}
}

func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// fillSpec enqueues n jobs of spec straight into the store, with ids
// made as the server makes them.
func fillSpec(ctx context.Context, st store.Store, q string, n int, spec job.Spec) error {
	for range n {
		if _, err := st.Enqueue(ctx, job.Job{ID: job.NewSortedID("j-"), Queue: q, Spec: spec}, nil); err != nil {
			return fmt.Errorf("enqueueing: %w", err)
		}
	}
	return nil
}

// waitRunning returns once n jobs of q are running, or fails when the
// agent process has exited.
func waitRunning(ctx context.Context, st store.Store, q string, n int, p *agentProc) error {
	for {
		js, err := st.ListJobs(ctx, store.JobFilter{Queue: q, State: job.Running, Limit: n})
		if err != nil {
			return fmt.Errorf("listing running jobs: %w", err)
		}
		if len(js) >= n {
			return nil
		}
		if err := p.alive(); err != nil {
			return err
		}
		if err := pause(ctx, 250*time.Millisecond); err != nil {
			return fmt.Errorf("%d of %d running: %w", len(js), n, err)
		}
	}
}

// SkyPilot's budget per managed job, in MB.
const skyPilotMBPerJob = 350

// The ops the runner calls while it follows jobs, in report order.
var followOps = []string{"DescribeTrainingJob", "ListTrainingJobs", "DescribeLogStreams", "GetLogEvents"}

func footprintMeasure(ctx context.Context, o Options) ([]Result, error) {
	sizes := []int{1000}
	if o.Full {
		sizes = append(sizes, 10000)
	}
	var out []Result
	for i, n := range sizes {
		f, err := MeasureFootprint(ctx, FootprintConfig{Jobs: n}, o)
		if err != nil {
			return out, fmt.Errorf("%d jobs: %w", n, err)
		}
		if i == 0 {
			out = append(out, summarize(Result{Measure: "footprint", Case: "idle agent", Unit: "MB RSS",
				Note: fmt.Sprintf("the agent's own process (`slipway agent`), VmRSS sampled once a second; anonymous (RssAnon) %.1f MB, the rest mostly the executable's pages; Go heap+stacks %.1f MB", f.IdleAnonMB, f.IdleGoMB)},
				f.IdleSamplesMB))
		}
		res := summarize(Result{Measure: "footprint", Case: fmt.Sprintf("%d SageMaker jobs", n), Unit: "MB RSS",
			Note: fmt.Sprintf("the agent's own process, VmRSS sampled once a second over %s: the anonymous part (next line) and the executable's file-backed pages (%.1f MB of them mapped as 2 MB huge pages: the kernel's page cache folios, which differ between runs of one build); %d goroutines; stand-in endpoint, see BENCHMARKS.md",
				f.Window, f.FilePMDMB, f.Goroutines)}, f.TrackingSamplesMB)
		res = compare(res, float64(skyPilotMBPerJob*n), "SkyPilot, 350 MB per managed job", true)
		anon := summarize(Result{Measure: "footprint", Case: fmt.Sprintf("%d SageMaker jobs, anonymous", n), Unit: "MB RssAnon",
			Note: fmt.Sprintf("the agent's own memory (heap, stacks, runtime), sampled with VmRSS; %.0f KB per tracked job over idle; Go heap+stacks %.1f MB (stacks %.1f MB); agent CPU %.1f%% of one core over the %s",
				(f.TrackingAnonMB-f.IdleAnonMB)*1024/float64(n), f.TrackingGoMB, f.TrackingStackMB, 100*f.CPUSeconds/f.Window.Seconds(), f.Window)}, f.TrackingAnonSamplesMB)
		anon = compare(anon, float64(skyPilotMBPerJob*n), "SkyPilot, 350 MB per managed job", true)
		if n == 1000 {
			res = target(res, "< 50 MB", f.TrackingMB < 50)
			anon = target(anon, "< 50 MB", f.TrackingAnonMB < 50)
		}
		out = append(out, res, anon)
		if f.FileMB > 0 {
			out = append(out, summarize(Result{Measure: "footprint", Case: fmt.Sprintf("%d SageMaker jobs, executable's pages used", n), Unit: "MB",
				Note: fmt.Sprintf("of the %.1f MB of file-backed pages resident (mostly the executable's), those the agent accessed over the %s (the kernel's accessed bits, cleared at its start): the rest were mapped by its start (package initializers) and the kernel's fault-around, and not used since",
					f.FileMB, f.Window)}, []float64{f.TouchedFileMB}))
		}
		if n != 1000 {
			continue
		}
		out = append(out, apiCost(f)...)
	}
	return out, nil
}

// apiCost turns a footprint run's call counts into results.
func apiCost(f Footprint) []Result {
	var out []Result
	c := fmt.Sprintf("%d jobs, %s", f.Jobs, f.Window)
	for _, op := range followOps {
		out = append(out, summarize(Result{Measure: "api-cost", Case: op + ", " + c, Unit: "calls/job/min",
			Note: fmt.Sprintf("%.1f calls/s for the whole agent; %d throttled", f.PerSecond(op), f.Throttled[op])},
			[]float64{f.PerJobPerMinute(op)}))
	}
	var others []string
	for op := range f.Calls {
		if !slices.Contains(followOps, op) {
			others = append(others, fmt.Sprintf("%s %d", op, f.Calls[op]))
		}
	}
	slices.Sort(others)
	throttles := 0
	for _, n := range f.Throttled {
		throttles += n
	}
	create, list := f.PerSecond("CreateTrainingJob"), f.PerSecond("ListTrainingJobs")
	res := summarize(Result{Measure: "api-cost", Case: "throttles, " + c, Unit: "calls",
		Note: fmt.Sprintf("CreateTrainingJob %.2f/s, ListTrainingJobs %.2f/s against quotas of 1/s and 2/s; other calls: %s",
			create, list, strings.Join(append(others, "none")[:max(len(others), 1)], ", "))}, []float64{float64(throttles)})
	res = target(res, "0 throttles; Create < 1/s, List < 2/s", throttles == 0 && create < 1 && list < 2)
	return append(out, res)
}

package sagemaker

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sagemaker"
	smtypes "github.com/aws/aws-sdk-go-v2/service/sagemaker/types"

	"github.com/slipway-ml/slipway/internal/config"
	"github.com/slipway-ml/slipway/internal/dockertest"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/localaws"
	"github.com/slipway-ml/slipway/internal/localaws/localawstest"
	"github.com/slipway-ml/slipway/internal/runner"
	"github.com/slipway-ml/slipway/internal/runner/runnertest"
)

// testTimeout bounds every wait of a test, so that a broken runner fails
// instead of hanging; no passing job comes near it.
const testTimeout = 2 * time.Minute

// env is one local AWS endpoint, a runner on it, and SDK clients to look
// behind the runner's back.
type env struct {
	srv *localaws.Server
	r   *Runner
	sm  *sagemaker.Client
	s3  *s3.Client
	img string
	ctx context.Context
}

func setup(t *testing.T, faults ...localaws.Faults) *env {
	t.Helper()
	var srv *localaws.Server
	if len(faults) > 0 {
		srv = localawstest.Start(t, localaws.Config{Faults: faults[0], StopGrace: time.Second, StopOnShutdown: true})
	} else {
		srv = localawstest.Start(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	e := &env{srv: srv, ctx: ctx, img: dockertest.BaseImage(t, dockertest.Client(t))}
	e.r = e.newRunner(t)
	c := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL()),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDLOCAL", "secret", "")}
	e.sm = sagemaker.NewFromConfig(c)
	e.s3 = s3.NewFromConfig(c, func(o *s3.Options) { o.UsePathStyle = true })
	return e
}

// newRunner returns a runner on the endpoint, as an agent (re)starting would make it.
func (e *env) newRunner(t *testing.T) *Runner {
	t.Helper()
	r, err := New(e.ctx, Config{Region: "us-east-1", Endpoint: e.srv.URL(), PollMin: 50 * time.Millisecond,
		PollMax: 400 * time.Millisecond, LogPoll: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

// queue is a sagemaker queue whose config is the DESIGN.md body filled in,
// with members replaced by extra (a JSON object, or "").
func queue(t *testing.T, extra string) job.Queue {
	t.Helper()
	body := map[string]any{}
	base := `{"RoleArn": "arn:aws:iam::000000000000:role/SageMakerRole", "EcrRepoName": "",
	 "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
	 "OutputDataConfig": {"S3OutputPath": "s3://out/models"},
	 "StoppingCondition": {"MaxRuntimeInSeconds": 60}}`
	for _, s := range []string{base, extra} {
		if s == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Fatalf("queue config %s: %v", s, err)
		}
		for k, v := range m {
			body[k] = v
		}
	}
	b, _ := json.Marshal(body)
	return job.Queue{Name: "smtest", Resource: job.SageMaker, Config: b}
}

// task is attempt 1 of a fresh job running script under sh in the busybox image.
func (e *env) task(script string) runner.Task {
	id := job.NewID("sm")
	return runner.Task{
		Job: &job.Job{ID: id, Queue: "smtest", Attempt: 1, State: job.Submitting,
			Spec: job.Spec{Image: e.img, Entrypoint: []string{"sh", "-c", script}}},
		Name: id + "-a1",
	}
}

func (e *env) start(t *testing.T, r *Runner, q job.Queue, task runner.Task) string {
	t.Helper()
	id, err := r.ForQueue(q).Start(e.ctx, task)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return id
}

func (e *env) wait(t *testing.T, r *Runner, task runner.Task, id string, s runner.Sink) runner.Result {
	t.Helper()
	res, err := r.Wait(e.ctx, task, id, s)
	if err != nil {
		t.Fatalf("Wait(%s): %v", id, err)
	}
	return res
}

// trainingJobs counts the endpoint's training jobs whose name contains part.
func (e *env) trainingJobs(t *testing.T, part string) int {
	t.Helper()
	out, err := e.sm.ListTrainingJobs(e.ctx, &sagemaker.ListTrainingJobsInput{NameContains: aws.String(part), MaxResults: aws.Int32(100)})
	if err != nil {
		t.Fatalf("ListTrainingJobs: %v", err)
	}
	return len(out.TrainingJobSummaries)
}

// waitRunning waits until s has seen the job's first output line.
func waitRunning(ctx context.Context, t *testing.T, s *runnertest.Sink) {
	t.Helper()
	if !s.WaitState(ctx, job.Running) {
		t.Fatalf("never reported %s; got %v", job.Running, s.States())
	}
	for len(s.Lines("stdout")) == 0 {
		select {
		case <-ctx.Done():
			t.Fatal("the job printed nothing before the deadline")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

type waited struct {
	res runner.Result
	err error
}

func (e *env) waitAsync(r *Runner, task runner.Task, id string, s runner.Sink) <-chan waited {
	done := make(chan waited, 1)
	go func() {
		res, err := r.Wait(e.ctx, task, id, s)
		done <- waited{res, err}
	}()
	return done
}

func (e *env) result(t *testing.T, done <-chan waited) runner.Result {
	t.Helper()
	select {
	case w := <-done:
		if w.err != nil {
			t.Fatalf("Wait: %v", w.err)
		}
		return w.res
	case <-e.ctx.Done():
		t.Fatal("Wait did not return before the deadline")
	}
	return runner.Result{}
}

func TestSuccess(t *testing.T) {
	t.Parallel()
	e := setup(t)
	task := e.task(`echo "job=$SLIPWAY_JOB_ID attempt=$SLIPWAY_ATTEMPT"
echo "hp=$(tr -d ' \n' < /opt/ml/input/config/hyperparameters.json)"
echo "rc=$SLIPWAY_RUN_CONFIG"
echo weights > /opt/ml/model/weights.txt
sleep 1
echo done`)
	// The sleep bills the job a second: the local endpoint leaves out a
	// BillableTimeInSeconds of 0.
	task.Job.Spec.RunConfig = json.RawMessage(`{"lr": 0.5, "deep": {"a": 1}}`)
	id := e.start(t, e.r, queue(t, ""), task)
	if id != task.Name {
		t.Errorf("external id: got %q, want the task name %q", id, task.Name)
	}
	var s runnertest.Sink
	res := e.wait(t, e.r, task, id, &s)
	if res.State != job.Finished {
		t.Fatalf("result: got %s (%q), want %s; logs %q", res.State, res.Reason, job.Finished, s.Lines("stdout"))
	}
	want := []string{"job=" + task.Job.ID + " attempt=1", `hp={"deep":"{\"a\":1}","lr":"0.5"}`, `rc={"lr":0.5,"deep":{"a":1}}`, "done"}
	if got := s.Lines("stdout"); !slices.Equal(got, want) {
		t.Errorf("stdout: got %q, want %q", got, want)
	}
	if got := s.States(); !slices.Equal(got, []job.State{job.Starting, job.Running}) {
		t.Errorf("states: got %v, want [starting running]", got)
	}
	notes := strings.Join(s.Lines("slipway"), "\n")
	for _, want := range []string{"SageMaker: Starting", "SageMaker: Training", "SageMaker: Completed", "output model_artifacts: s3://out/models/" + id} {
		if !strings.Contains(notes, want) {
			t.Errorf("slipway notes: got %q, want one with %q", notes, want)
		}
	}
	outs, err := e.r.Outputs(e.ctx, id)
	if err != nil {
		t.Fatalf("Outputs: %v", err)
	}
	wantModel := "s3://out/models/" + id + "/output/model.tar.gz"
	if got := outs[OutputModelArtifacts]; got != wantModel {
		t.Fatalf("outputs %s: got %q, want %q", OutputModelArtifacts, got, wantModel)
	}
	if _, ok := outs[OutputBillableSeconds]; !ok {
		t.Errorf("outputs: got %v, want %s", outs, OutputBillableSeconds)
	}
	obj, err := e.s3.GetObject(e.ctx, &s3.GetObjectInput{Bucket: aws.String("out"), Key: aws.String("models/" + id + "/output/model.tar.gz")})
	if err != nil {
		t.Fatalf("GetObject model.tar.gz: %v", err)
	}
	defer obj.Body.Close()
	if got := untarGz(t, obj.Body)["weights.txt"]; got != "weights\n" {
		t.Errorf("model.tar.gz weights.txt: got %q, want %q", got, "weights\n")
	}
}

func untarGz(t *testing.T, r io.Reader) map[string]string {
	t.Helper()
	zr, err := gzip.NewReader(r)
	if err != nil {
		t.Fatalf("model.tar.gz: %v", err)
	}
	tr := tar.NewReader(zr)
	files := map[string]string{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatalf("reading model.tar.gz: %v", err)
		}
		b, _ := io.ReadAll(tr)
		files[strings.TrimPrefix(hdr.Name, "./")] = string(b)
	}
}

func TestFailure(t *testing.T) {
	t.Parallel()
	e := setup(t)
	task := e.task(`echo working; echo "bad learning rate" > /opt/ml/output/failure; exit 3`)
	id := e.start(t, e.r, queue(t, ""), task)
	var s runnertest.Sink
	res := e.wait(t, e.r, task, id, &s)
	if res.State != job.Failed {
		t.Fatalf("result: got %s (%q), want %s", res.State, res.Reason, job.Failed)
	}
	for _, want := range []string{"bad learning rate", "exit code: 3"} {
		if !strings.Contains(res.Reason, want) {
			t.Errorf("reason: got %q, want it to contain %q", res.Reason, want)
		}
	}
	if got := s.Lines("stdout"); !slices.Equal(got, []string{"working"}) {
		t.Errorf("stdout: got %q, want [working]", got)
	}
}

func TestStop(t *testing.T) {
	t.Parallel()
	e := setup(t)
	task := e.task(`echo up; sleep 300`)
	id := e.start(t, e.r, queue(t, ""), task)
	var s runnertest.Sink
	done := e.waitAsync(e.r, task, id, &s)
	waitRunning(e.ctx, t, &s)
	if err := e.r.Stop(e.ctx, id); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	res := e.result(t, done)
	if res.State != job.Stopped {
		t.Errorf("result: got %s (%q), want %s", res.State, res.Reason, job.Stopped)
	}
	// Stopping a job that has ended is fine; one SageMaker never had is lost.
	if err := e.r.Stop(e.ctx, id); err != nil {
		t.Errorf("Stop after the end: got %v, want nil", err)
	}
	if err := e.r.Stop(e.ctx, "no-such-job"); !errors.Is(err, runner.ErrLost) {
		t.Errorf("Stop of an unknown job: got %v, want runner.ErrLost", err)
	}
	if _, err := e.r.Wait(e.ctx, task, "no-such-job", &s); !errors.Is(err, runner.ErrLost) {
		t.Errorf("Wait on an unknown job: got %v, want runner.ErrLost", err)
	}
}

func TestMaxRuntime(t *testing.T) {
	t.Parallel()
	e := setup(t)
	task := e.task(`echo up; sleep 300`)
	id := e.start(t, e.r, queue(t, `{"StoppingCondition": {"MaxRuntimeInSeconds": 1}}`), task)
	res := e.wait(t, e.r, task, id, &runnertest.Sink{})
	if res.State != job.Failed || !strings.Contains(res.Reason, "MaxRuntimeExceeded") {
		t.Errorf("result: got %s (%q), want %s with MaxRuntimeExceeded", res.State, res.Reason, job.Failed)
	}
}

func TestSpotInterruption(t *testing.T) {
	t.Parallel()
	e := setup(t)
	q := queue(t, `{"EnableManagedSpotTraining": true, "StoppingCondition": {"MaxRuntimeInSeconds": 60, "MaxWaitTimeInSeconds": 120},
		"CheckpointConfig": {"S3Uri": "s3://out/checkpoints/${job_id}"}}`)
	task := e.task(`echo up; sleep 300`)
	id := e.start(t, e.r, q, task)
	var s runnertest.Sink
	done := e.waitAsync(e.r, task, id, &s)
	waitRunning(e.ctx, t, &s)
	resp, err := http.Post(e.srv.URL()+localaws.AdminPrefix+"interrupt?job="+id, "", nil)
	if err != nil {
		t.Fatalf("interrupting: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("interrupting: got HTTP %d, want 204", resp.StatusCode)
	}
	res := e.result(t, done)
	if res.State != job.Preempted || !strings.Contains(res.Reason, "Interrupted") {
		t.Errorf("result: got %s (%q), want %s (Interrupted)", res.State, res.Reason, job.Preempted)
	}
	out, err := e.sm.DescribeTrainingJob(e.ctx, &sagemaker.DescribeTrainingJobInput{TrainingJobName: aws.String(id)})
	if err != nil {
		t.Fatalf("DescribeTrainingJob: %v", err)
	}
	if got, want := aws.ToString(out.CheckpointConfig.S3Uri), "s3://out/checkpoints/"+task.Job.ID; got != want {
		t.Errorf("CheckpointConfig.S3Uri: got %q, want %q, the same for the next attempt", got, want)
	}
}

// TestThrottling runs jobs while 30% of the endpoint's API calls are
// throttled: every job still ends as it should, with all its logs.
func TestThrottling(t *testing.T) {
	t.Parallel()
	e := setup(t, localaws.Faults{ThrottleRate: 0.3})
	const n = 3
	type run struct {
		task runner.Task
		sink runnertest.Sink
		done <-chan waited
	}
	runs := make([]*run, n)
	for i := range runs {
		rn := &run{task: e.task(fmt.Sprintf("echo first %d; echo second %d", i, i))}
		id := e.start(t, e.r, queue(t, ""), rn.task)
		rn.done = e.waitAsync(e.r, rn.task, id, &rn.sink)
		runs[i] = rn
	}
	for i, rn := range runs {
		res := e.result(t, rn.done)
		if res.State != job.Finished {
			t.Errorf("job %d: got %s (%q), want %s", i, res.State, res.Reason, job.Finished)
		}
		want := []string{fmt.Sprintf("first %d", i), fmt.Sprintf("second %d", i)}
		if got := rn.sink.Lines("stdout"); !slices.Equal(got, want) {
			t.Errorf("job %d stdout: got %q, want %q", i, got, want)
		}
	}
	if err := e.srv.SetFaults(localaws.Faults{}); err != nil {
		t.Fatal(err)
	}
	if got := e.trainingJobs(t, "sm"); got != n {
		t.Errorf("training jobs: got %d, want %d (one per job, throttled creates not doubled)", got, n)
	}
}

// TestAllHosts follows the log streams of every host, page by page.
func TestAllHosts(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.r.logPage = 1
	q := queue(t, `{"ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 2, "VolumeSizeInGB": 1}}`)
	task := e.task(`for i in 1 2 3 4 5 6 7; do echo "$(hostname) line $i"; done`)
	id := e.start(t, e.r, q, task)
	var s runnertest.Sink
	if res := e.wait(t, e.r, task, id, &s); res.State != job.Finished {
		t.Fatalf("result: got %s (%q), want %s", res.State, res.Reason, job.Finished)
	}
	got := s.Lines("stdout")
	for _, host := range []string{"algo-1", "algo-2"} {
		var want, mine []string
		for i := 1; i <= 7; i++ {
			want = append(want, fmt.Sprintf("[%s] %s line %d", host, host, i))
		}
		for _, l := range got {
			if strings.HasPrefix(l, "["+host+"]") {
				mine = append(mine, l)
			}
		}
		if !slices.Equal(mine, want) {
			t.Errorf("stdout of %s: got %q, want %q", host, mine, want)
		}
	}
	if len(got) != 14 {
		t.Errorf("stdout: got %d lines %q, want 14", len(got), got)
	}
}

// TestReattach is an agent restart: a new Runner knows only the job's
// name, follows it to the end with all its logs, and a repeated Start
// creates no second training job.
func TestReattach(t *testing.T) {
	t.Parallel()
	e := setup(t)
	q := queue(t, "")
	task := e.task(`echo one; sleep 2; echo two`)
	id := e.start(t, e.r, q, task)
	var first runnertest.Sink
	go func() { _, _ = e.r.Wait(e.ctx, task, id, &first) }() // the agent that dies
	waitRunning(e.ctx, t, &first)

	second := e.newRunner(t)
	again, err := second.ForQueue(q).Start(e.ctx, task)
	if err != nil || again != id {
		t.Fatalf("Start again: got %q, %v, want %q adopted", again, err, id)
	}
	var s runnertest.Sink
	res := e.wait(t, second, task, id, &s)
	if res.State != job.Finished {
		t.Errorf("result: got %s (%q), want %s", res.State, res.Reason, job.Finished)
	}
	if got, want := s.Lines("stdout"), []string{"one", "two"}; !slices.Equal(got, want) {
		t.Errorf("stdout: got %q, want %q (replayed from the start)", got, want)
	}
	if got := e.trainingJobs(t, task.Job.ID); got != 1 {
		t.Errorf("training jobs for %s: got %d, want 1", task.Job.ID, got)
	}
}

// TestResourceInUse adopts a job of this attempt and refuses one that
// merely has its name.
func TestResourceInUse(t *testing.T) {
	t.Parallel()
	e := setup(t)
	q := queue(t, "")
	task := e.task(`echo ran`)
	id1 := e.start(t, e.r, q, task)
	id2 := e.start(t, e.r, q, task)
	if id1 != id2 {
		t.Errorf("external ids: got %q then %q, want the job adopted", id1, id2)
	}
	if res := e.wait(t, e.r, task, id1, &runnertest.Sink{}); res.State != job.Finished {
		t.Errorf("result: got %s (%q), want %s", res.State, res.Reason, job.Finished)
	}
	if got := e.trainingJobs(t, task.Job.ID); got != 1 {
		t.Errorf("training jobs: got %d, want 1", got)
	}

	// Someone else's job holds the name the next task would take.
	other := e.task(`echo other`)
	req, err := BuildRequest(q, other)
	if err != nil {
		t.Fatal(err)
	}
	req.Input.Environment[runner.EnvJobID] = "someone-else"
	req.Input.Tags = []smtypes.Tag{{Key: aws.String(TagJobID), Value: aws.String("someone-else")}}
	if _, err := e.sm.CreateTrainingJob(e.ctx, req.Input); err != nil {
		t.Fatalf("CreateTrainingJob: %v", err)
	}
	if _, err := e.r.ForQueue(q).Start(e.ctx, other); !errors.Is(err, job.ErrConflict) || !strings.Contains(err.Error(), "taken") {
		t.Errorf("Start on a taken name: got %v, want job.ErrConflict saying the name is taken", err)
	}
}

func TestStartNeedsItsQueue(t *testing.T) {
	t.Parallel()
	r := newRunner(Config{}.WithDefaults(), nil, nil)
	if _, err := r.Start(context.Background(), runner.Task{Job: &job.Job{Queue: "q"}}); err == nil || !strings.Contains(err.Error(), "queue q") {
		t.Errorf("Start without a queue: got %v, want an error naming queue q", err)
	}
	bad := job.Queue{Name: "q", Resource: job.SageMaker, Config: json.RawMessage(config.DefaultSageMakerQueue)}
	lookup := newRunner(Config{Queues: func(context.Context, string) (job.Queue, error) { return bad, nil }}.WithDefaults(), nil, nil)
	_, err := lookup.Start(context.Background(), runner.Task{Job: &job.Job{ID: "j", Queue: "q", Attempt: 1, Spec: job.Spec{Image: "i"}}, Name: "j-a1"})
	if !errors.Is(err, job.ErrInvalid) || !strings.Contains(err.Error(), "RoleArn") {
		t.Errorf("Start on a queue not ready: got %v, want job.ErrInvalid naming RoleArn", err)
	}
}

// TestSDKChain checks that New takes its region and endpoint from the
// environment, as the SDK's default chain does (AWS_REGION,
// AWS_ENDPOINT_URL), and refuses to start without a region.
func TestSDKChain(t *testing.T) {
	srv := localawstest.Start(t)
	ctx := context.Background()
	if _, err := New(ctx, Config{}); !errors.Is(err, job.ErrInvalid) || !strings.Contains(err.Error(), "region") {
		t.Errorf("New without a region: got %v, want job.ErrInvalid about the region", err)
	}
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ENDPOINT_URL", srv.URL())
	r, err := New(ctx, Config{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	// A round trip to the endpoint: it answers that it has no such job.
	if err := r.Stop(ctx, "no-such-job"); !errors.Is(err, runner.ErrLost) {
		t.Errorf("Stop through AWS_ENDPOINT_URL: got %v, want runner.ErrLost from the local endpoint", err)
	}
}

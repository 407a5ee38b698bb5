// Package runnertest is the conformance suite every runner.Runner passes:
// output reaches the Sink in order, exit codes become results with reasons,
// Stop means stop, the job sees its environment and run config, a second
// Start adopts the run, and a restarted agent re-attaches (or learns that it
// cannot, through runner.ErrLost).
//
// A runner's test calls Run with a constructor and an Env that says how to
// express a shell script as that runner's job spec.
package runnertest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/runner"
)

// Env tells the suite what differs between runners.
type Env struct {
	// Spec returns a job spec whose command runs script with a POSIX shell
	// (sh -c script) where the runner runs its jobs: on the host for the
	// process runner, in a busybox image for the container runner. The suite
	// adds Env and RunConfig to it. Required.
	Spec func(script string) job.Spec
	// Reattach says whether a second Runner (an agent after its restart) can
	// follow a run that another one started. When false, its Wait must return
	// runner.ErrLost.
	Reattach bool
}

// timeout bounds every wait of the suite, so that a broken runner fails the
// test instead of hanging it; no passing run comes near it.
const timeout = 2 * time.Minute

// Run runs the conformance suite against the runners that newRunner returns.
// newRunner is called once per subtest, and once more where the suite needs a
// second runner (a restarted agent); it registers its own cleanup with t.
func Run(t *testing.T, newRunner func(t *testing.T) (runner.Runner, Env)) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, newRunner func(t *testing.T) (runner.Runner, Env))
	}{
		{"Success", testSuccess},
		{"Failure", testFailure},
		{"LongLine", testLongLine},
		{"Stop", testStop},
		{"StopIgnoringTERM", testStopIgnoringTERM},
		{"EnvAndRunConfig", testEnvAndRunConfig},
		{"Code", testCode},
		{"StartTwice", testStartTwice},
		{"WaitAfterEnd", testWaitAfterEnd},
		{"Reattach", testReattach},
		{"ReattachStopped", testReattachStopped},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newRunner)
		})
	}
}

// NewTask returns a task for a fresh job on queue "runnertest" whose command
// is spec; its name is unique, valid as a container and training job name.
func NewTask(spec job.Spec) runner.Task {
	id := job.NewID("rt")
	return runner.Task{
		Job:  &job.Job{ID: id, Queue: "runnertest", Attempt: 1, Spec: spec, State: job.Submitting},
		Name: id + "-1",
	}
}

// Code returns a Task.Code that opens a gzipped tarball of files, keyed by
// slash-separated relative path.
func Code(t testing.TB, files map[string]string) func(context.Context) (io.ReadCloser, error) {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		body := files[name]
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body)), ModTime: time.Unix(0, 0)}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("writing tar header %s: %v", name, err)
		}
		if _, err := io.WriteString(tw, body); err != nil {
			t.Fatalf("writing tar body %s: %v", name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	return func(context.Context) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}
}

// start starts a task running script on r and fails the test on error.
func start(ctx context.Context, t *testing.T, r runner.Runner, task runner.Task) string {
	t.Helper()
	id, err := r.Start(ctx, task)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if id == "" {
		t.Fatal("Start returned an empty external id")
	}
	return id
}

// wait waits for the run and fails the test on error.
func wait(ctx context.Context, t *testing.T, r runner.Runner, task runner.Task, id string, s runner.Sink) runner.Result {
	t.Helper()
	res, err := r.Wait(ctx, task, id, s)
	if err != nil {
		t.Fatalf("Wait(%s): %v", id, err)
	}
	return res
}

func setup(t *testing.T, newRunner func(t *testing.T) (runner.Runner, Env)) (context.Context, runner.Runner, Env) {
	t.Helper()
	r, env := newRunner(t)
	if env.Spec == nil {
		t.Fatal("runnertest: Env.Spec is nil")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx, r, env
}

func testSuccess(t *testing.T, newRunner func(t *testing.T) (runner.Runner, Env)) {
	ctx, r, env := setup(t, newRunner)
	task := NewTask(env.Spec("echo out1; echo err1 >&2; echo out2; echo err2 >&2; echo out3"))
	id := start(ctx, t, r, task)
	var s Sink
	res := wait(ctx, t, r, task, id, &s)
	if res.State != job.Finished {
		t.Errorf("result: got %s (%q), want %s", res.State, res.Reason, job.Finished)
	}
	if got, want := s.Lines("stdout"), []string{"out1", "out2", "out3"}; !reflect.DeepEqual(got, want) {
		t.Errorf("stdout: got %q, want %q", got, want)
	}
	if got, want := s.Lines("stderr"), []string{"err1", "err2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("stderr: got %q, want %q", got, want)
	}
	if got := s.States(); !slices.Contains(got, job.Running) {
		t.Errorf("states reported: got %v, want %s among them", got, job.Running)
	}
}

func testFailure(t *testing.T, newRunner func(t *testing.T) (runner.Runner, Env)) {
	ctx, r, env := setup(t, newRunner)
	task := NewTask(env.Spec("echo working; echo 'boom: bad learning rate' >&2; exit 3"))
	id := start(ctx, t, r, task)
	var s Sink
	res := wait(ctx, t, r, task, id, &s)
	if res.State != job.Failed {
		t.Errorf("result: got %s (%q), want %s", res.State, res.Reason, job.Failed)
	}
	for _, want := range []string{"exit code 3", "boom: bad learning rate"} {
		if !strings.Contains(res.Reason, want) {
			t.Errorf("reason: got %q, want it to contain %q", res.Reason, want)
		}
	}
	if got, want := s.Lines("stderr"), []string{"boom: bad learning rate"}; !reflect.DeepEqual(got, want) {
		t.Errorf("stderr: got %q, want %q", got, want)
	}
}

// testLongLine checks that a line longer than any buffer arrives whole,
// split into several lines at most.
func testLongLine(t *testing.T, newRunner func(t *testing.T) (runner.Runner, Env)) {
	ctx, r, env := setup(t, newRunner)
	const n = 300_000
	task := NewTask(env.Spec("head -c 300000 /dev/zero | tr '\\0' x; echo; echo after"))
	id := start(ctx, t, r, task)
	var s Sink
	res := wait(ctx, t, r, task, id, &s)
	if res.State != job.Finished {
		t.Fatalf("result: got %s (%q), want %s", res.State, res.Reason, job.Finished)
	}
	lines := s.Lines("stdout")
	if len(lines) < 2 || lines[len(lines)-1] != "after" {
		t.Fatalf("stdout: got %d lines, want the long one then %q", len(lines), "after")
	}
	long := strings.Join(lines[:len(lines)-1], "")
	if long != strings.Repeat("x", n) {
		t.Errorf("long line: got %d bytes (%d lines), want %d x's", len(long), len(lines)-1, n)
	}
}

// stopAndWait starts script, waits for it to run, stops it and returns how
// it ended.
func stopAndWait(t *testing.T, newRunner func(t *testing.T) (runner.Runner, Env), script string) runner.Result {
	t.Helper()
	ctx, r, env := setup(t, newRunner)
	task := NewTask(env.Spec(script))
	id := start(ctx, t, r, task)
	var s Sink
	type waited struct {
		res runner.Result
		err error
	}
	done := make(chan waited, 1)
	go func() {
		res, err := r.Wait(ctx, task, id, &s)
		done <- waited{res, err}
	}()
	if !s.WaitState(ctx, job.Running) {
		t.Fatalf("no %s state reported before the deadline; got %v", job.Running, s.States())
	}
	// Wait for the job's own first line, so that its signal handling is set up.
	for len(s.Lines("stdout")) == 0 {
		select {
		case w := <-done:
			t.Fatalf("run ended before Stop: %+v, %v", w.res, w.err)
		case <-ctx.Done():
			t.Fatal("the job printed nothing before the deadline")
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := r.Stop(ctx, id); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	select {
	case w := <-done:
		if w.err != nil {
			t.Fatalf("Wait: %v", w.err)
		}
		return w.res
	case <-ctx.Done():
		t.Fatal("Wait did not return after Stop")
	}
	return runner.Result{}
}

func testStop(t *testing.T, newRunner func(t *testing.T) (runner.Runner, Env)) {
	// The job exits 0 on SIGTERM; since the stop was ours, it is still stopped.
	res := stopAndWait(t, newRunner, `trap 'echo got TERM; exit 0' TERM; echo up; while :; do sleep 0.1; done`)
	if res.State != job.Stopped {
		t.Errorf("result: got %s (%q), want %s", res.State, res.Reason, job.Stopped)
	}
}

func testStopIgnoringTERM(t *testing.T, newRunner func(t *testing.T) (runner.Runner, Env)) {
	// The job ignores SIGTERM: the runner must kill it once the grace period is over.
	res := stopAndWait(t, newRunner, `trap '' TERM; echo up; sleep 600`)
	if res.State != job.Stopped {
		t.Errorf("result: got %s (%q), want %s", res.State, res.Reason, job.Stopped)
	}
}

func testEnvAndRunConfig(t *testing.T, newRunner func(t *testing.T) (runner.Runner, Env)) {
	ctx, r, env := setup(t, newRunner)
	spec := env.Spec(`echo "job=$SLIPWAY_JOB_ID"
echo "queue=$SLIPWAY_QUEUE"
echo "attempt=$SLIPWAY_ATTEMPT"
echo "custom=$RT_CUSTOM"
printf 'config=%s\n' "$SLIPWAY_RUN_CONFIG"
printf 'file=%s\n' "$(cat "$SLIPWAY_RUN_CONFIG_FILE" | tr -d '\n')"`)
	if spec.Env == nil {
		spec.Env = map[string]string{}
	}
	spec.Env["RT_CUSTOM"] = "hello world"
	runConfig := `{"lr": 0.01, "layers": [64, 32], "name": "a b"}`
	spec.RunConfig = json.RawMessage(runConfig)
	task := NewTask(spec)
	task.Job.Attempt = 2
	task.Name = task.Job.ID + "-2"
	id := start(ctx, t, r, task)
	var s Sink
	res := wait(ctx, t, r, task, id, &s)
	if res.State != job.Finished {
		t.Fatalf("result: got %s (%q), want %s; stderr %q", res.State, res.Reason, job.Finished, s.Lines("stderr"))
	}
	got := map[string]string{}
	for _, l := range s.Lines("stdout") {
		k, v, _ := strings.Cut(l, "=")
		got[k] = v
	}
	for k, want := range map[string]string{"job": task.Job.ID, "queue": "runnertest", "attempt": "2", "custom": "hello world"} {
		if got[k] != want {
			t.Errorf("%s: got %q, want %q", k, got[k], want)
		}
	}
	for _, k := range []string{"config", "file"} {
		if !sameJSON(got[k], runConfig) {
			t.Errorf("run config from %s: got %q, want the JSON %s", k, got[k], runConfig)
		}
	}
}

// sameJSON reports whether a and b hold equal JSON values.
func sameJSON(a, b string) bool {
	var va, vb any
	if json.Unmarshal([]byte(a), &va) != nil || json.Unmarshal([]byte(b), &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

func testCode(t *testing.T, newRunner func(t *testing.T) (runner.Runner, Env)) {
	ctx, r, env := setup(t, newRunner)
	task := NewTask(env.Spec("cat data/hello.txt; sh ./train.sh"))
	task.Code = Code(t, map[string]string{
		"data/hello.txt": "hello from the code\n",
		"train.sh":       "echo training\n",
	})
	id := start(ctx, t, r, task)
	var s Sink
	res := wait(ctx, t, r, task, id, &s)
	if res.State != job.Finished {
		t.Errorf("result: got %s (%q), want %s; stderr %q", res.State, res.Reason, job.Finished, s.Lines("stderr"))
	}
	if got, want := s.Lines("stdout"), []string{"hello from the code", "training"}; !reflect.DeepEqual(got, want) {
		t.Errorf("stdout: got %q, want %q", got, want)
	}
}

func testStartTwice(t *testing.T, newRunner func(t *testing.T) (runner.Runner, Env)) {
	ctx, r, env := setup(t, newRunner)
	task := NewTask(env.Spec("echo ran"))
	id1 := start(ctx, t, r, task)
	id2 := start(ctx, t, r, task)
	if id1 != id2 {
		t.Errorf("external ids: got %q then %q, want the same run adopted", id1, id2)
	}
	var s Sink
	res := wait(ctx, t, r, task, id1, &s)
	if res.State != job.Finished {
		t.Errorf("result: got %s (%q), want %s", res.State, res.Reason, job.Finished)
	}
	if got, want := s.Lines("stdout"), []string{"ran"}; !reflect.DeepEqual(got, want) {
		t.Errorf("stdout: got %q, want %q", got, want)
	}
}

func testWaitAfterEnd(t *testing.T, newRunner func(t *testing.T) (runner.Runner, Env)) {
	ctx, r, env := setup(t, newRunner)
	task := NewTask(env.Spec("echo done"))
	id := start(ctx, t, r, task)
	if res := wait(ctx, t, r, task, id, &Sink{}); res.State != job.Finished {
		t.Fatalf("result: got %s (%q), want %s", res.State, res.Reason, job.Finished)
	}
	// The result was read and the run cleaned up: nothing is left to follow.
	if _, err := r.Wait(ctx, task, id, &Sink{}); !errors.Is(err, runner.ErrLost) {
		t.Errorf("second Wait: got %v, want runner.ErrLost", err)
	}
}

func testReattach(t *testing.T, newRunner func(t *testing.T) (runner.Runner, Env)) {
	ctx, first, env := setup(t, newRunner)
	task := NewTask(env.Spec("echo one; sleep 1; echo two"))
	id := start(ctx, t, first, task)
	// The agent restarts: a new runner instance knows only the external id.
	second, _ := newRunner(t)
	var s Sink
	res, err := second.Wait(ctx, task, id, &s)
	if !env.Reattach {
		if !errors.Is(err, runner.ErrLost) {
			t.Errorf("Wait from a new runner: got %+v, %v, want runner.ErrLost", res, err)
		}
		// The first runner still owns the run and follows it to its end.
		if res := wait(ctx, t, first, task, id, &Sink{}); res.State != job.Finished {
			t.Errorf("first runner's result: got %s (%q), want %s", res.State, res.Reason, job.Finished)
		}
		return
	}
	if err != nil {
		t.Fatalf("Wait from a new runner: %v", err)
	}
	if res.State != job.Finished {
		t.Errorf("result: got %s (%q), want %s", res.State, res.Reason, job.Finished)
	}
	if got, want := s.Lines("stdout"), []string{"one", "two"}; !reflect.DeepEqual(got, want) {
		t.Errorf("stdout: got %q, want %q", got, want)
	}
}

func testReattachStopped(t *testing.T, newRunner func(t *testing.T) (runner.Runner, Env)) {
	ctx, first, env := setup(t, newRunner)
	if !env.Reattach {
		t.Skip("the runner cannot re-attach")
	}
	task := NewTask(env.Spec("echo up; sleep 600"))
	id := start(ctx, t, first, task)
	if err := first.Stop(ctx, id); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	// The agent restarts after its Stop: the new runner must still see that
	// the run was stopped on purpose, not failed.
	second, _ := newRunner(t)
	res := wait(ctx, t, second, task, id, &Sink{})
	if res.State != job.Stopped {
		t.Errorf("result: got %s (%q), want %s", res.State, res.Reason, job.Stopped)
	}
}

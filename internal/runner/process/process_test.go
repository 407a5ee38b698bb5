package process_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/runner"
	"github.com/slipway-ml/slipway/internal/runner/process"
	"github.com/slipway-ml/slipway/internal/runner/runnertest"
)

func newRunner(t *testing.T) *process.Runner {
	t.Helper()
	r, err := process.New(process.Config{
		WorkDir: t.TempDir(),
		Grace:   500 * time.Millisecond,
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

func shell(script string) job.Spec {
	return job.Spec{Entrypoint: []string{"/bin/sh", "-c"}, Args: []string{script}}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	runnertest.Run(t, func(t *testing.T) (runner.Runner, runnertest.Env) {
		return newRunner(t), runnertest.Env{Spec: shell, Reattach: false}
	})
}

// TestMinimalEnv is not parallel: it sets a variable in the agent's environment.
func TestMinimalEnv(t *testing.T) {
	t.Setenv("SLIPWAY_TEST_AGENT_SECRET", "hunter2")
	r := newRunner(t)
	ctx := context.Background()
	task := runnertest.NewTask(shell(`env`))
	task.Job.Spec.Env = map[string]string{"JOB_VAR": "x", runner.EnvQueue: "spoofed"}
	id, err := r.Start(ctx, task)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	var s runnertest.Sink
	res, err := r.Wait(ctx, task, id, &s)
	if err != nil || res.State != job.Finished {
		t.Fatalf("Wait: got %+v, %v, want finished", res, err)
	}
	env := map[string]string{}
	for _, l := range s.Lines("stdout") {
		k, v, _ := strings.Cut(l, "=")
		env[k] = v
	}
	if v, ok := env["SLIPWAY_TEST_AGENT_SECRET"]; ok {
		t.Errorf("agent variable leaked into the job: SLIPWAY_TEST_AGENT_SECRET=%q", v)
	}
	if got, want := env["JOB_VAR"], "x"; got != want {
		t.Errorf("JOB_VAR: got %q, want %q", got, want)
	}
	if got, want := env[runner.EnvQueue], task.Job.Queue; got != want {
		t.Errorf("%s: got %q, want %q (the runner's value wins)", runner.EnvQueue, got, want)
	}
	if env["PATH"] == "" {
		t.Errorf("PATH: got none, want the agent's")
	}
}

func TestStartErrors(t *testing.T) {
	t.Parallel()
	r := newRunner(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		task runner.Task
		want string
	}{
		{"no command", runnertest.NewTask(job.Spec{}), "spec.entrypoint"},
		{"bad run config", func() runner.Task {
			task := runnertest.NewTask(shell("true"))
			task.Job.Spec.RunConfig = []byte(`[1,2]`)
			return task
		}(), "spec.run_config"},
		{"bad name", func() runner.Task {
			task := runnertest.NewTask(shell("true"))
			task.Name = "../escape"
			return task
		}(), "task name"},
		{"no such program", runnertest.NewTask(job.Spec{Entrypoint: []string{"/nonexistent/train"}}), "/nonexistent/train"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.Start(ctx, tc.task)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Start: got %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

func TestStopUnknown(t *testing.T) {
	t.Parallel()
	r := newRunner(t)
	if err := r.Stop(context.Background(), "pid:1"); !errors.Is(err, runner.ErrLost) {
		t.Errorf("Stop of a process we did not start: got %v, want runner.ErrLost", err)
	}
}

// TestStopReachesChildren checks that Stop signals the whole process group:
// a grandchild that ignores nothing still dies, and the pipes it holds close.
func TestStopReachesChildren(t *testing.T) {
	t.Parallel()
	r := newRunner(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	task := runnertest.NewTask(shell(`sh -c 'trap "" TERM; sleep 600' & echo "child=$!"; wait`))
	id, err := r.Start(ctx, task)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	var s runnertest.Sink
	done := make(chan runner.Result, 1)
	go func() {
		res, err := r.Wait(ctx, task, id, &s)
		if err != nil {
			t.Errorf("Wait: %v", err)
		}
		done <- res
	}()
	for len(s.Lines("stdout")) == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	if err := r.Stop(ctx, id); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	res := <-done
	if res.State != job.Stopped {
		t.Errorf("result: got %+v, want stopped", res)
	}
	_, pidText, _ := strings.Cut(s.Lines("stdout")[0], "=")
	// Gone, or a zombie waiting for init to reap it.
	if stat, err := os.ReadFile(filepath.Join("/proc", pidText, "stat")); err == nil {
		if _, after, _ := strings.Cut(string(stat), ") "); !strings.HasPrefix(after, "Z") {
			t.Errorf("child %s still alive after Stop: %s", pidText, stat)
		}
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	if _, err := process.New(process.Config{Grace: -time.Second}); !errors.Is(err, job.ErrInvalid) {
		t.Errorf("negative grace: got %v, want job.ErrInvalid", err)
	}
	if _, err := process.New(process.Config{WorkDir: "relative"}); !errors.Is(err, job.ErrInvalid) {
		t.Errorf("relative work dir: got %v, want job.ErrInvalid", err)
	}
	c := process.Config{}.WithDefaults()
	if c.Grace != 10*time.Second || c.WorkDir != filepath.Join(os.TempDir(), "slipway-runs") || c.Logger == nil {
		t.Errorf("defaults: got %+v", c)
	}
}

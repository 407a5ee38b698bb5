// Package process runs jobs as local processes on the agent's machine: the
// local-process resource.
//
// Each run gets its own directory holding the job's code and its run config,
// a minimal environment (so that the agent's secrets do not leak into jobs),
// and its own process group, so that a stop reaches every process the job
// started. A process cannot outlive its agent in a useful way: after an agent
// restart, Wait returns runner.ErrLost.
package process

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/runner"
)

var _ runner.Runner = (*Runner)(nil)

// Config configures a Runner.
type Config struct {
	// WorkDir holds one scratch directory per run, named after the task and
	// removed once its result is read. Default: os.TempDir()/slipway-runs.
	WorkDir string
	// Grace is how long a stopped job has between SIGTERM and SIGKILL.
	// Default: 10s.
	Grace time.Duration
	// Logger receives the runner's own notes. Default: slog.Default().
	Logger *slog.Logger
	// Secrets resolves a job's secret references (secretsmanager:...,
	// ssm:/...) when its run starts; their values go to the secrets folder
	// with the sealed ones and are redacted from the run's lines and
	// failure reason. Default: nil, which fails a job that has a reference,
	// naming it.
	Secrets Resolver
}

// WithDefaults returns c with its zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.WorkDir == "" {
		c.WorkDir = filepath.Join(os.TempDir(), "slipway-runs")
	}
	if c.Grace == 0 {
		c.Grace = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports the first field of c that cannot work.
func (c Config) Validate() error {
	if c.Grace < 0 {
		return fmt.Errorf("%w: grace: got %s, want a positive duration", job.ErrInvalid, c.Grace)
	}
	if c.WorkDir != "" && !filepath.IsAbs(c.WorkDir) {
		return fmt.Errorf("%w: work_dir: got %q, want an absolute path", job.ErrInvalid, c.WorkDir)
	}
	return nil
}

// Runner runs jobs as local processes. It is safe for concurrent use.
type Runner struct {
	cfg     Config
	startMu sync.Mutex // serializes Start, so that one task never starts twice

	mu    sync.Mutex
	runs  map[string]*run   // by external id
	names map[string]string // task name → external id
}

// New returns a Runner for cfg, with defaults filled in.
func New(cfg Config) (*Runner, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating work dir: %w", err)
	}
	return &Runner{cfg: cfg, runs: map[string]*run{}, names: map[string]string{}}, nil
}

type line struct{ stream, text string }

// run is one started process.
type run struct {
	id, name, dir string
	secrets       string   // the secrets folder, removed with dir
	redact        []string // resolved secret values, hidden from lines and the reason
	pid           int

	lines   chan line     // both streams, each in order; closed when both end
	exited  chan struct{} // closed once the process is reaped and state is set
	state   *os.ProcessState
	waitSem chan struct{} // one Wait at a time consumes the lines

	stopped  atomic.Bool
	killOnce sync.Once

	mu      sync.Mutex
	lastErr string // the last non-empty stderr line
}

// Start launches the task's command in its own directory and process group.
func (r *Runner) Start(ctx context.Context, t runner.Task) (string, error) {
	argv := append(slices.Clone(t.Job.Spec.Entrypoint), t.Job.Spec.Args...)
	if len(argv) == 0 || argv[0] == "" {
		return "", fmt.Errorf("%w: spec.entrypoint: the local-process runner needs a command", job.ErrInvalid)
	}
	if t.Name == "" || t.Name != filepath.Base(t.Name) || t.Name == "." || t.Name == ".." {
		return "", fmt.Errorf("%w: task name %q: want a plain file name", job.ErrInvalid, t.Name)
	}
	r.startMu.Lock()
	defer r.startMu.Unlock()
	r.mu.Lock()
	id, ok := r.names[t.Name]
	r.mu.Unlock()
	if ok {
		return id, nil
	}

	dir := filepath.Join(r.cfg.WorkDir, t.Name)
	// What a previous agent left here belongs to a run nobody follows any more.
	if err := os.RemoveAll(dir); err != nil {
		return "", fmt.Errorf("clearing job directory %s: %w", dir, err)
	}
	if err := PrepareDir(ctx, dir, t); err != nil {
		return "", fmt.Errorf("preparing job directory %s: %w", dir, err)
	}
	cfgJSON, _ := RunConfig(t.Job.Spec) // checked by PrepareDir
	env := append(hostEnv(), JobEnv(t, cfgJSON, filepath.Join(dir, RunConfigFile))...)
	secrets := SecretsDir(r.cfg.WorkDir, t)
	var redact []string
	if HasSecrets(t) {
		var err error
		if redact, err = WriteSecrets(ctx, secrets, t, r.cfg.Secrets); err != nil {
			_ = os.RemoveAll(dir)
			return "", err
		}
		env = append(env, runner.EnvSecretsDir+"="+secrets)
	}

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true,
		// If the agent dies, its jobs should not run on unwatched.
		Pdeathsig: syscall.SIGTERM,
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		_ = os.RemoveAll(secrets)
		return "", fmt.Errorf("creating stdout pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		_ = os.RemoveAll(secrets)
		return "", fmt.Errorf("creating stderr pipe: %w", err)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		_ = os.RemoveAll(dir)
		_ = os.RemoveAll(secrets)
		return "", fmt.Errorf("starting %s: %w", argv[0], err)
	}

	ru := &run{
		id:      "pid:" + strconv.Itoa(cmd.Process.Pid),
		name:    t.Name,
		dir:     dir,
		secrets: secrets,
		redact:  redact,
		pid:     cmd.Process.Pid,
		lines:   make(chan line),
		exited:  make(chan struct{}),
		waitSem: make(chan struct{}, 1),
	}
	var readers sync.WaitGroup
	for _, p := range []struct {
		stream string
		f      *os.File
	}{{"stdout", outR}, {"stderr", errR}} {
		readers.Go(func() {
			defer p.f.Close()
			err := ReadLines(p.f, func(text string) {
				text = job.Redact(text, ru.redact)
				if p.stream == "stderr" && strings.TrimSpace(text) != "" {
					ru.mu.Lock()
					ru.lastErr = text
					ru.mu.Unlock()
				}
				ru.lines <- line{p.stream, text}
			})
			if err != nil {
				r.cfg.Logger.Warn("reading job output", "job", t.Job.ID, "stream", p.stream, "err", err)
			}
		})
	}
	go func() {
		readers.Wait()
		close(ru.lines)
	}()
	go func() {
		_ = cmd.Wait() // the state says how it ended; our pipes are *os.File, so no copy errors
		ru.state = cmd.ProcessState
		// Whatever the job left running in its group dies with it, which
		// also closes the pipes it held.
		_ = syscall.Kill(-ru.pid, syscall.SIGKILL)
		close(ru.exited)
	}()

	r.mu.Lock()
	r.runs[ru.id] = ru
	r.names[t.Name] = ru.id
	r.mu.Unlock()
	r.cfg.Logger.Info("started process", "job", t.Job.ID, "queue", t.Job.Queue, "attempt", t.Job.Attempt, "pid", ru.pid, "dir", dir)
	return ru.id, nil
}

// hostEnv is the little of the agent's environment a job gets.
func hostEnv() []string {
	env := []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	for _, k := range []string{"PATH", "HOME", "LANG"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// JobEnv returns the variables every runner gives a job: the spec's Env,
// then the SLIPWAY_* variables, which win over a spec variable of the same
// name. runConfig is the run config JSON and file the path where the job
// finds it.
func JobEnv(t runner.Task, runConfig []byte, file string) []string {
	var env []string
	for _, k := range slices.Sorted(maps.Keys(t.Job.Spec.Env)) {
		env = append(env, k+"="+t.Job.Spec.Env[k])
	}
	return append(env,
		runner.EnvJobID+"="+t.Job.ID,
		runner.EnvQueue+"="+t.Job.Queue,
		runner.EnvAttempt+"="+strconv.Itoa(t.Job.Attempt),
		runner.EnvRunConfig+"="+string(runConfig),
		runner.EnvRunConfigFile+"="+file,
	)
}

func (r *Runner) lookup(id string) *run {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.runs[id]
}

// Wait streams the process's output into s until it exits and returns how it
// ended. A process this Runner did not start (an agent restart) is
// runner.ErrLost.
func (r *Runner) Wait(ctx context.Context, t runner.Task, externalID string, s runner.Sink) (runner.Result, error) {
	ru := r.lookup(externalID)
	if ru == nil {
		return runner.Result{}, fmt.Errorf("waiting for %s: %w", externalID, runner.ErrLost)
	}
	select {
	case ru.waitSem <- struct{}{}:
		defer func() { <-ru.waitSem }()
	case <-ctx.Done():
		return runner.Result{}, fmt.Errorf("waiting for %s: %w", externalID, ctx.Err())
	}
	s.State(job.Running, "process "+strconv.Itoa(ru.pid)+" started")
	for lines := ru.lines; lines != nil; {
		select {
		case l, ok := <-lines:
			if !ok {
				lines = nil
				continue
			}
			s.Log(l.stream, l.text)
		case <-ctx.Done():
			return runner.Result{}, fmt.Errorf("waiting for %s: %w", externalID, ctx.Err())
		}
	}
	select {
	case <-ru.exited:
	case <-ctx.Done():
		return runner.Result{}, fmt.Errorf("waiting for %s: %w", externalID, ctx.Err())
	}
	res := ru.result()
	r.mu.Lock()
	delete(r.runs, ru.id)
	delete(r.names, ru.name)
	r.mu.Unlock()
	if err := os.RemoveAll(ru.dir); err != nil {
		r.cfg.Logger.Warn("removing job directory", "job", t.Job.ID, "dir", ru.dir, "err", err)
	}
	if err := os.RemoveAll(ru.secrets); err != nil {
		r.cfg.Logger.Warn("removing secrets folder", "job", t.Job.ID, "err", err)
	}
	r.cfg.Logger.Info("process ended", "job", t.Job.ID, "pid", ru.pid, "state", res.State, "reason", res.Reason)
	return res, nil
}

// result says how the exited process ended.
func (ru *run) result() runner.Result {
	if ru.stopped.Load() {
		return runner.Result{State: job.Stopped, Reason: "stopped on request"}
	}
	ws, _ := ru.state.Sys().(syscall.WaitStatus)
	var reason string
	switch {
	case ws.Signaled():
		reason = "killed by signal " + ws.Signal().String()
	case ru.state.ExitCode() == 0:
		return runner.Result{State: job.Finished, Reason: "exit code 0"}
	default:
		reason = "exit code " + strconv.Itoa(ru.state.ExitCode())
	}
	ru.mu.Lock()
	defer ru.mu.Unlock()
	if ru.lastErr != "" {
		reason += ": " + ru.lastErr
	}
	return runner.Result{State: job.Failed, Reason: reason}
}

// Stop sends SIGTERM to the job's process group, then SIGKILL once the grace
// period is over. It returns at once; Wait reports the end.
func (r *Runner) Stop(ctx context.Context, externalID string) error {
	ru := r.lookup(externalID)
	if ru == nil {
		return fmt.Errorf("stopping %s: %w", externalID, runner.ErrLost)
	}
	select {
	case <-ru.exited:
		return nil // it ended on its own before the stop
	default:
	}
	ru.stopped.Store(true)
	if err := syscall.Kill(-ru.pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stopping %s: %w", externalID, err)
	}
	ru.killOnce.Do(func() {
		go func() {
			timer := time.NewTimer(r.cfg.Grace)
			defer timer.Stop()
			select {
			case <-ru.exited:
			case <-timer.C:
				r.cfg.Logger.Info("grace period over, killing process group", "pid", ru.pid)
				_ = syscall.Kill(-ru.pid, syscall.SIGKILL)
			}
		}()
	})
	r.cfg.Logger.Info("stopping process", "pid", ru.pid, "grace", r.cfg.Grace)
	return nil
}

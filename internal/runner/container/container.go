// Package container runs jobs as containers on the local Docker engine: the
// local-container resource.
//
// A run is a container named "slipway-" + the task's name, so that a second
// Start (or a restarted agent) finds it and adopts it instead of starting
// another. It is removed once Wait has read its result; until then a new
// Runner can re-attach to it by that name. A Stop leaves a marker file in the
// container, so that a re-attached Wait still reports it as stopped.
//
// A re-attached Wait follows the container's logs from their start, so lines
// the previous agent already reported arrive again.
package container

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"

	"github.com/slipway-ml/slipway/internal/dockerlogs"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/runner"
	"github.com/slipway-ml/slipway/internal/runner/process"
)

var _ runner.Runner = (*Runner)(nil)

// Labels set on every container this runner creates.
const (
	LabelJob     = "slipway.job"
	LabelAttempt = "slipway.attempt"
)

// Paths inside the container.
const (
	// CodeDir is where the job's code is mounted, and the working directory
	// of a job that has code.
	CodeDir = "/opt/slipway/code"
	// RunConfigPath is the run config file, named by SLIPWAY_RUN_CONFIG_FILE.
	RunConfigPath = "/opt/slipway/run-config.json"
	// SecretsDir is where the job's secrets folder is mounted read-only,
	// named by SLIPWAY_SECRETS_DIR.
	SecretsDir = "/run/slipway/secrets"
	// stopMarker exists once the run was stopped on request.
	stopMarker = "/opt/slipway/stopped"
)

// NamePrefix starts the name of every container this runner creates.
const NamePrefix = "slipway-"

// Config configures a Runner.
type Config struct {
	// Client talks to the Docker engine. Default: one from the environment
	// (DOCKER_HOST and friends) with API version negotiation.
	Client client.APIClient
	// Grace is how long a stopped container has between SIGTERM and SIGKILL,
	// rounded up to whole seconds. Default: 10s.
	Grace time.Duration
	// Network is the Docker network containers join. Default: the engine's
	// default bridge.
	Network string
	// WorkDir holds, on the engine's host, one directory per run with the
	// job's code, bind-mounted at CodeDir. Default: os.TempDir()/slipway-containers.
	WorkDir string
	// Labels are added to every container, besides LabelJob and LabelAttempt.
	// Default: none.
	Labels map[string]string
	// Logger receives the runner's own notes. Default: slog.Default().
	Logger *slog.Logger
	// Secrets resolves a job's secret references (secretsmanager:...,
	// ssm:/...) when its container is created; their values go to the
	// read-only secrets mount with the sealed ones and are redacted from the
	// run's lines and failure reason. Default: nil, which fails a job that
	// has a reference, naming it.
	Secrets process.Resolver
}

// WithDefaults returns c with its zero fields set to their defaults; the
// default Client is made by New.
func (c Config) WithDefaults() Config {
	if c.Grace == 0 {
		c.Grace = 10 * time.Second
	}
	if c.WorkDir == "" {
		c.WorkDir = filepath.Join(os.TempDir(), "slipway-containers")
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

// Runner runs jobs as local containers. It is safe for concurrent use.
type Runner struct {
	cfg     Config
	cli     client.APIClient
	ownsCli bool

	mu      sync.Mutex
	stopped map[string]bool // container names this Runner stopped
}

// New returns a Runner for cfg, with defaults filled in.
func New(cfg Config) (*Runner, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Runner{cfg: cfg, cli: cfg.Client, stopped: map[string]bool{}}
	if r.cli == nil {
		cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if err != nil {
			return nil, fmt.Errorf("creating Docker client: %w", err)
		}
		r.cli, r.ownsCli = cli, true
	}
	return r, nil
}

// Close releases the Docker client when New made it.
func (r *Runner) Close() error {
	if r.ownsCli {
		return r.cli.Close()
	}
	return nil
}

// validName is what Docker accepts as a container name.
var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// Name returns the container name of a task.
func Name(t runner.Task) string { return NamePrefix + t.Name }

// Start creates and starts the task's container, or adopts the one already
// there under its name.
func (r *Runner) Start(ctx context.Context, t runner.Task) (string, error) {
	spec := t.Job.Spec
	// The job's image is the one built from its code, when the agent built one.
	if t.Job.Image != "" {
		spec.Image = t.Job.Image
	}
	if spec.Image == "" {
		return "", fmt.Errorf("%w: spec.image: the local-container runner needs an image", job.ErrInvalid)
	}
	name := Name(t)
	if t.Name == "" || !validName.MatchString(name) {
		return "", fmt.Errorf("%w: task name %q: want letters, digits, '_', '.' or '-'", job.ErrInvalid, t.Name)
	}
	cfgJSON, err := process.RunConfig(spec)
	if err != nil {
		return "", err
	}
	log := r.cfg.Logger.With("job", t.Job.ID, "queue", t.Job.Queue, "attempt", t.Job.Attempt, "container", name)

	if info, err := r.cli.ContainerInspect(ctx, name); err == nil {
		return name, r.adopt(ctx, log, info, cfgJSON)
	} else if !cerrdefs.IsNotFound(err) {
		return "", fmt.Errorf("inspecting container %s: %w", name, err)
	}
	if err := r.ensureImage(ctx, log, spec.Image); err != nil {
		return "", err
	}

	cc := &container.Config{
		Image:      spec.Image,
		Entrypoint: spec.Entrypoint,
		Cmd:        spec.Args,
		Env:        process.JobEnv(t, cfgJSON, RunConfigPath),
		Labels:     r.labels(t),
	}
	hc := &container.HostConfig{}
	if r.cfg.Network != "" {
		hc.NetworkMode = container.NetworkMode(r.cfg.Network)
	}
	hostDir := filepath.Join(r.cfg.WorkDir, t.Name)
	if t.Code != nil {
		if err := os.RemoveAll(hostDir); err != nil {
			return "", fmt.Errorf("clearing code directory %s: %w", hostDir, err)
		}
		if err := process.PrepareDir(ctx, hostDir, t); err != nil {
			return "", fmt.Errorf("preparing code directory %s: %w", hostDir, err)
		}
		hc.Mounts = []mount.Mount{{Type: mount.TypeBind, Source: hostDir, Target: CodeDir}}
		cc.WorkingDir = CodeDir
	}
	secrets := process.SecretsDir(r.cfg.WorkDir, t)
	if process.HasSecrets(t) {
		if _, err := process.WriteSecrets(ctx, secrets, t, r.cfg.Secrets); err != nil {
			_ = os.RemoveAll(hostDir)
			return "", err
		}
		hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.TypeBind, Source: secrets, Target: SecretsDir, ReadOnly: true})
		cc.Env = append(cc.Env, runner.EnvSecretsDir+"="+SecretsDir)
	}
	created, err := r.cli.ContainerCreate(ctx, cc, hc, nil, nil, name)
	if cerrdefs.IsConflict(err) {
		// Another Start got there first: that run is ours to adopt.
		info, ierr := r.cli.ContainerInspect(ctx, name)
		if ierr != nil {
			return "", fmt.Errorf("inspecting container %s after a name conflict: %w", name, ierr)
		}
		return name, r.adopt(ctx, log, info, cfgJSON)
	}
	if err != nil {
		_ = os.RemoveAll(hostDir)
		_ = os.RemoveAll(secrets)
		return "", fmt.Errorf("creating container %s: %w", name, err)
	}
	if err := r.startCreated(ctx, created.ID, cfgJSON); err != nil {
		cleanup := context.WithoutCancel(ctx)
		if rerr := r.cli.ContainerRemove(cleanup, created.ID, container.RemoveOptions{Force: true}); rerr != nil {
			log.Warn("removing a container that did not start", "err", rerr)
		}
		_ = os.RemoveAll(hostDir)
		_ = os.RemoveAll(secrets)
		return "", err
	}
	log.Info("started container", "id", created.ID, "image", spec.Image)
	return name, nil
}

func (r *Runner) labels(t runner.Task) map[string]string {
	l := maps.Clone(r.cfg.Labels)
	if l == nil {
		l = map[string]string{}
	}
	l[LabelJob] = t.Job.ID
	l[LabelAttempt] = strconv.Itoa(t.Job.Attempt)
	return l
}

// adopt takes over a container found under the task's name, starting it
// when its creator did not get that far.
func (r *Runner) adopt(ctx context.Context, log *slog.Logger, info container.InspectResponse, cfgJSON []byte) error {
	log.Info("adopting existing container", "id", info.ID, "status", info.State.Status)
	if info.State != nil && info.State.Status == container.StateCreated {
		return r.startCreated(ctx, info.ID, cfgJSON)
	}
	return nil
}

// startCreated copies the run config into a created container and starts it.
func (r *Runner) startCreated(ctx context.Context, id string, cfgJSON []byte) error {
	if err := r.copyFile(ctx, id, RunConfigPath, cfgJSON); err != nil {
		return fmt.Errorf("copying the run config into container %s: %w", id, err)
	}
	if err := r.cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		return fmt.Errorf("starting container %s: %w", id, err)
	}
	return nil
}

// copyFile writes body at the absolute path p inside the container,
// creating its directories.
func (r *Runner) copyFile(ctx context.Context, id, p string, body []byte) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	rel := p[1:]
	var dirs []string
	for dir := filepath.Dir(rel); dir != "."; dir = filepath.Dir(dir) {
		dirs = append([]string{dir + "/"}, dirs...)
	}
	for _, d := range dirs {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: now}); err != nil {
			return err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: 0o644, Size: int64(len(body)), ModTime: now}); err != nil {
		return err
	}
	if _, err := tw.Write(body); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return r.cli.CopyToContainer(ctx, id, "/", &buf, container.CopyToContainerOptions{})
}

// ensureImage pulls ref unless the engine has it.
func (r *Runner) ensureImage(ctx context.Context, log *slog.Logger, ref string) error {
	_, err := r.cli.ImageInspect(ctx, ref)
	if err == nil {
		return nil
	}
	if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("inspecting image %s: %w", ref, err)
	}
	log.Info("image not in the local engine, pulling it", "image", ref)
	rc, err := r.cli.ImagePull(ctx, ref, image.PullOptions{})
	if err == nil {
		err = jsonmessage.DisplayJSONMessagesStream(rc, discard{}, 0, false, nil)
		rc.Close()
	}
	if err != nil {
		return fmt.Errorf("%w: image %s is not in the local engine and pulling it failed: %v", job.ErrNotFound, ref, err)
	}
	log.Info("pulled image", "image", ref)
	return nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Wait follows the container's output into s until it exits, reads how it
// ended and removes it. When ctx ends first the container is kept, so that a
// later Wait can re-attach.
func (r *Runner) Wait(ctx context.Context, t runner.Task, externalID string, s runner.Sink) (runner.Result, error) {
	info, err := r.cli.ContainerInspect(ctx, externalID)
	if cerrdefs.IsNotFound(err) {
		return runner.Result{}, fmt.Errorf("waiting for container %s: %w", externalID, runner.ErrLost)
	}
	if err != nil {
		return runner.Result{}, fmt.Errorf("inspecting container %s: %w", externalID, err)
	}
	if info.State != nil && info.State.Status == container.StateCreated {
		// Its Start was cut short; it was never run, so run it now.
		if err := r.cli.ContainerStart(ctx, info.ID, container.StartOptions{}); err != nil {
			return runner.Result{}, fmt.Errorf("starting container %s: %w", externalID, err)
		}
	}
	// The resolved values are read back from the secrets folder, which
	// outlives an agent restart: a re-attached Wait hides them too. (The
	// agent itself redacts the sealed ones.)
	var redact []string
	if t.Name != "" && validName.MatchString(t.Name) {
		if redact, err = process.ReadResolved(process.SecretsDir(r.cfg.WorkDir, t), t); err != nil {
			return runner.Result{}, err
		}
	}
	s.State(job.Running, "container "+externalID+" running")

	// lastErr, the last non-empty stderr line, becomes the failure reason;
	// it is read once logsDone has answered.
	lastErr := ""
	logsDone := make(chan error, 1)
	go func() {
		logsDone <- dockerlogs.Follow(ctx, r.cli, info.ID, dockerlogs.Options{MaxLine: process.MaxLine}, func(l dockerlogs.Line) {
			l.Text = job.Redact(l.Text, redact)
			stream := "stdout"
			if l.Stderr {
				stream = "stderr"
				if strings.TrimSpace(l.Text) != "" {
					lastErr = l.Text
				}
			}
			s.Log(stream, l.Text)
		})
	}()

	waitCh, errCh := r.cli.ContainerWait(ctx, info.ID, container.WaitConditionNotRunning)
	select {
	case <-waitCh:
	case err := <-errCh:
		if ctx.Err() != nil {
			return runner.Result{}, fmt.Errorf("waiting for container %s: %w", externalID, ctx.Err())
		}
		return runner.Result{}, fmt.Errorf("waiting for container %s: %w", externalID, err)
	}
	select {
	case err := <-logsDone:
		if err != nil && ctx.Err() == nil {
			r.cfg.Logger.Warn("reading container logs", "container", externalID, "err", err)
		}
	case <-ctx.Done():
		return runner.Result{}, fmt.Errorf("reading logs of container %s: %w", externalID, ctx.Err())
	}

	info, err = r.cli.ContainerInspect(ctx, info.ID)
	if err != nil {
		return runner.Result{}, fmt.Errorf("inspecting container %s: %w", externalID, err)
	}
	stopped := r.wasStopped(ctx, externalID, info.ID)
	res := result(info, stopped, lastErr)
	res.Reason = job.Redact(res.Reason, redact) // st.Error may quote the job's output

	cleanup := context.WithoutCancel(ctx)
	if err := r.cli.ContainerRemove(cleanup, info.ID, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		r.cfg.Logger.Warn("removing container", "container", externalID, "err", err)
	}
	if t.Name != "" && validName.MatchString(t.Name) {
		_ = os.RemoveAll(filepath.Join(r.cfg.WorkDir, t.Name))
		_ = os.RemoveAll(process.SecretsDir(r.cfg.WorkDir, t))
	}
	r.mu.Lock()
	delete(r.stopped, externalID)
	r.mu.Unlock()
	r.cfg.Logger.Info("container ended", "job", t.Job.ID, "container", externalID, "state", res.State, "reason", res.Reason)
	return res, nil
}

// wasStopped reports whether the run was stopped on request, by this Runner
// or, through the marker, by an earlier one.
func (r *Runner) wasStopped(ctx context.Context, name, id string) bool {
	r.mu.Lock()
	ours := r.stopped[name]
	r.mu.Unlock()
	if ours {
		return true
	}
	_, err := r.cli.ContainerStatPath(ctx, id, stopMarker)
	return err == nil
}

// result says how an exited container ended.
func result(info container.InspectResponse, stopped bool, lastErr string) runner.Result {
	if stopped {
		return runner.Result{State: job.Stopped, Reason: "stopped on request"}
	}
	st := info.State
	if st == nil {
		return runner.Result{State: job.Failed, Reason: "container has no state"}
	}
	if st.OOMKilled {
		return runner.Result{State: job.Failed, Reason: "out of memory (exit code " + strconv.Itoa(st.ExitCode) + ")"}
	}
	if st.ExitCode == 0 && st.Error == "" {
		return runner.Result{State: job.Finished, Reason: "exit code 0"}
	}
	reason := "exit code " + strconv.Itoa(st.ExitCode)
	if st.Error != "" {
		reason += ": " + st.Error
	} else if lastErr != "" {
		reason += ": " + lastErr
	}
	return runner.Result{State: job.Failed, Reason: reason}
}

// Stop marks the run as stopped on request and stops its container: SIGTERM,
// then SIGKILL once the grace period is over. It returns once the container
// has stopped.
func (r *Runner) Stop(ctx context.Context, externalID string) error {
	r.mu.Lock()
	r.stopped[externalID] = true
	r.mu.Unlock()
	if err := r.copyFile(ctx, externalID, stopMarker, []byte("stopped on request\n")); err != nil {
		if cerrdefs.IsNotFound(err) {
			return fmt.Errorf("stopping container %s: %w", externalID, runner.ErrLost)
		}
		// Wait still knows through r.stopped; only a restarted agent would not.
		r.cfg.Logger.Warn("marking container as stopped", "container", externalID, "err", err)
	}
	secs := int(math.Ceil(r.cfg.Grace.Seconds()))
	r.cfg.Logger.Info("stopping container", "container", externalID, "grace", r.cfg.Grace)
	if err := r.cli.ContainerStop(ctx, externalID, container.StopOptions{Timeout: &secs}); err != nil {
		if cerrdefs.IsNotFound(err) {
			return fmt.Errorf("stopping container %s: %w", externalID, runner.ErrLost)
		}
		return fmt.Errorf("stopping container %s: %w", externalID, err)
	}
	return nil
}

// Package sagemaker is the local SageMaker training service: the
// CreateTrainingJob family of the awsJson1_1 API, with training jobs run on
// the local Docker engine under SageMaker's container contract (/opt/ml/...).
// Job records are kept as JSON files under a folder, so a restarted endpoint
// still describes old jobs and re-attaches to containers that kept running.
package sagemaker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/client"

	"github.com/slipway-ml/slipway/internal/localaws/fault"
)

// Objects is the S3 side a training job reads its inputs from and writes its
// outputs to.
type Objects interface {
	EnsureBucket(bucket string) error
	Get(bucket, key string) (io.ReadCloser, int64, error)
	Put(bucket, key string, r io.Reader, size int64) error
	List(bucket, prefix string) ([]string, error)
}

// Logs receives the training containers' lines as they are printed.
type Logs interface {
	Put(group, stream string, t time.Time, messages ...string) error
	// Last returns the timestamp (epoch ms) of a stream's last event.
	Last(group, stream string) (int64, bool)
}

// LogGroup is where training jobs log, as on AWS.
const LogGroup = "/aws/sagemaker/TrainingJobs"

// Label keys set on every container and network the service creates.
const (
	LabelLocalAWS = "slipway.localaws"          // always "1"
	LabelJob      = "slipway.localaws.job"      // the TrainingJobName
	LabelEndpoint = "slipway.localaws.endpoint" // Config.EndpointID
	LabelHost     = "slipway.localaws.host"     // algo-N
)

// Config sets up a Service.
type Config struct {
	// Dir holds one JSON file per job. Required.
	Dir string
	// Region and Account name ARNs. Required.
	Region, Account string
	// EndpointID labels this endpoint's containers, so that two endpoints
	// on one engine leave each other's containers alone. Required.
	EndpointID string
	// Docker runs the training containers. Required.
	Docker client.APIClient
	// Objects is the S3 store. Required.
	Objects Objects
	// Logs receives container output. Required.
	Logs Logs
	// ResolveImage maps a TrainingImage to the reference the engine pulls
	// (an ECR URI to the local registry). Default: unchanged.
	ResolveImage func(string) (ref string, pullAlways bool)
	// Faults injects capacity errors and slow starts. Default: none.
	Faults *fault.Injector
	// StopGrace is how long a container has between SIGTERM and SIGKILL
	// when stopped, as SageMaker's 120 s. Default 120s.
	StopGrace time.Duration
	// MaxInstanceCount bounds ResourceConfig.InstanceCount. Default 4.
	MaxInstanceCount int
	// MaxRunningJobs bounds jobs in progress at once, answering
	// ResourceLimitExceeded past it, like an account quota. Default 0: no bound.
	MaxRunningJobs int
	// StopOnShutdown stops running containers when the service shuts down
	// (the jobs end Stopped). Default false: they keep running, and the next
	// service on the same Dir re-attaches to them.
	StopOnShutdown bool
	// Log receives the service's own messages. Default: discarded.
	Log *slog.Logger
}

// Service serves the training API and runs the jobs.
type Service struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	jobs    map[string]*record
	active  map[string]*activeJob
	wg      sync.WaitGroup
	baseCtx context.Context // set by Start
	closing bool
}

// activeJob is a job whose goroutine is running.
type activeJob struct {
	stop chan string // receives why the job must stop: user, runtime, interrupt, shutdown
	once sync.Once
}

func (a *activeJob) signal(why string) {
	a.once.Do(func() { a.stop <- why })
}

// New loads the records under cfg.Dir. Call Start to run and re-attach jobs.
func New(cfg Config) (*Service, error) {
	if cfg.Dir == "" || cfg.Docker == nil || cfg.Objects == nil || cfg.Logs == nil || cfg.EndpointID == "" {
		return nil, errors.New("sagemaker: Dir, Docker, Objects, Logs and EndpointID are required")
	}
	if cfg.ResolveImage == nil {
		cfg.ResolveImage = func(s string) (string, bool) { return s, false }
	}
	if cfg.Faults == nil {
		cfg.Faults = fault.New(fault.Faults{})
	}
	if cfg.StopGrace == 0 {
		cfg.StopGrace = 120 * time.Second
	}
	if cfg.MaxInstanceCount == 0 {
		cfg.MaxInstanceCount = 4
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{cfg: cfg, log: log, jobs: map[string]*record{}, active: map[string]*activeJob{}}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating jobs dir: %w", err)
	}
	entries, err := os.ReadDir(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("reading jobs dir: %w", err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(cfg.Dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("reading job record: %w", err)
		}
		var rec record
		if err := json.Unmarshal(b, &rec); err != nil {
			log.Warn("skipping unreadable job record", "file", e.Name(), "err", err)
			continue
		}
		s.jobs[rec.Job.TrainingJobName] = &rec
	}
	return s, nil
}

// Start re-attaches the jobs that were in progress when the last service on
// this Dir stopped; new jobs run under ctx. It returns at once.
func (s *Service) Start(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.baseCtx = ctx
	for name, rec := range s.jobs {
		if terminal(rec.Job.TrainingJobStatus) {
			continue
		}
		s.launchLocked(name, true)
	}
}

// Shutdown waits for the job goroutines to return; with StopOnShutdown it
// first stops the running jobs. The context passed to Start must be done or
// about to be.
func (s *Service) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	if s.cfg.StopOnShutdown {
		for _, a := range s.active {
			a.signal("shutdown")
		}
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for training jobs to settle: %w", ctx.Err())
	}
}

// launchLocked starts the goroutine that runs (or, reattach, follows) a job.
func (s *Service) launchLocked(name string, reattach bool) {
	a := &activeJob{stop: make(chan string, 1)}
	s.active[name] = a
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() {
			s.mu.Lock()
			delete(s.active, name)
			s.mu.Unlock()
		}()
		s.run(s.baseCtx, name, a, reattach)
	}()
}

// snapshot returns a copy of a job's record.
func (s *Service) snapshot(name string) (record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.jobs[name]
	if !ok {
		return record{}, false
	}
	return cloneRecord(rec), true
}

func cloneRecord(rec *record) record {
	c := *rec
	c.Job.SecondaryStatusTransitions = slices.Clone(rec.Job.SecondaryStatusTransitions)
	c.Local.Containers = slices.Clone(rec.Local.Containers)
	c.Job.HyperParameters = maps.Clone(rec.Job.HyperParameters)
	c.Job.Environment = maps.Clone(rec.Job.Environment)
	return c
}

// update changes a job under the lock and writes its record.
func (s *Service) update(name string, f func(rec *record)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.jobs[name]
	if !ok {
		return fmt.Errorf("updating job %s: gone", name)
	}
	f(rec)
	return s.saveLocked(rec)
}

func (s *Service) saveLocked(rec *record) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding job record: %w", err)
	}
	path := filepath.Join(s.cfg.Dir, rec.Job.TrainingJobName+".json")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("writing job record: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing job record: %w", err)
	}
	return nil
}

func removeRecord(dir, name string) error {
	if err := os.Remove(filepath.Join(dir, name+".json")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing job record: %w", err)
	}
	return nil
}

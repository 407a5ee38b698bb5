package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// StandIn is a stand-in AWS endpoint for the footprint and API-cost
// measures only: it speaks the SageMaker and CloudWatch Logs JSON
// protocols for the calls the SageMaker runner makes, keeps every training
// job it is asked to create InProgress (Training) forever (modified once,
// at its creation, as ListTrainingJobs tells), answers every log read with
// no events, and counts the calls by operation. The real
// local endpoint (internal/localaws) would run a container per training
// job, which cannot be done 10,000 times on one machine.
//
// Limits, when set, throttle an operation to that many calls per second
// (a token bucket with one second of burst), as an AWS account's quotas
// do; the throttled calls are counted apart.
type StandIn struct {
	url string
	srv *http.Server

	mu        sync.Mutex
	jobs      map[string]time.Time // training job name -> creation time
	calls     map[string]int
	throttled map[string]int
	limits    map[string]float64
	tokens    map[string]float64
	refilled  map[string]time.Time
}

// StartStandIn serves a stand-in endpoint on loopback until Close.
func StartStandIn() (*StandIn, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening: %w", err)
	}
	s := &StandIn{url: "http://" + ln.Addr().String(), jobs: map[string]time.Time{}}
	s.Reset()
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// URL is the endpoint's base URL.
func (s *StandIn) URL() string { return s.url }

// Close stops serving.
func (s *StandIn) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

// Reset zeroes the counters and removes the limits.
func (s *StandIn) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls, s.throttled = map[string]int{}, map[string]int{}
	s.limits, s.tokens, s.refilled = map[string]float64{}, map[string]float64{}, map[string]time.Time{}
}

// Limit throttles op to perSecond calls a second from now on.
func (s *StandIn) Limit(op string, perSecond float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limits[op], s.tokens[op], s.refilled[op] = perSecond, perSecond, time.Now()
}

// Calls returns the calls answered, by operation ("DescribeTrainingJob",
// "DescribeLogStreams", ...), throttled ones excluded.
func (s *StandIn) Calls() map[string]int { return s.snapshot(s.calls) }

// Throttled returns the calls answered with ThrottlingException, by operation.
func (s *StandIn) Throttled() map[string]int { return s.snapshot(s.throttled) }

// Created counts the training jobs created.
func (s *StandIn) Created() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.jobs)
}

func (s *StandIn) snapshot(m map[string]int) map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// admit counts a call of op and says whether it is under op's limit.
func (s *StandIn) admit(op string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if limit, ok := s.limits[op]; ok {
		now := time.Now()
		s.tokens[op] = min(limit, s.tokens[op]+now.Sub(s.refilled[op]).Seconds()*limit)
		s.refilled[op] = now
		if s.tokens[op] < 1 {
			s.throttled[op]++
			return false
		}
		s.tokens[op]--
	}
	s.calls[op]++
	return true
}

const standInArnPrefix = "arn:aws:sagemaker:us-east-1:000000000000:training-job/"

func (s *StandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	_, op, _ := strings.Cut(target, ".")
	var in map[string]any
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		awsError(w, http.StatusBadRequest, "SerializationException", "reading the request: "+err.Error())
		return
	}
	if !s.admit(op) {
		awsError(w, http.StatusBadRequest, "ThrottlingException", "Rate exceeded")
		return
	}
	name, _ := in["TrainingJobName"].(string)
	switch op {
	case "CreateTrainingJob":
		s.mu.Lock()
		_, exists := s.jobs[name]
		if !exists {
			s.jobs[name] = time.Now()
		}
		s.mu.Unlock()
		if exists {
			awsError(w, http.StatusBadRequest, "ResourceInUse", "Training job names must be unique within an AWS account and region")
			return
		}
		awsJSON(w, map[string]any{"TrainingJobArn": standInArnPrefix + name})
	case "DescribeTrainingJob":
		s.mu.Lock()
		created, ok := s.jobs[name]
		s.mu.Unlock()
		if !ok {
			awsError(w, http.StatusBadRequest, "ValidationException", "Requested resource not found.")
			return
		}
		at := float64(created.UnixMilli()) / 1000
		awsJSON(w, map[string]any{
			"TrainingJobName": name, "TrainingJobArn": standInArnPrefix + name,
			"TrainingJobStatus": "InProgress", "SecondaryStatus": "Training",
			"CreationTime": at, "TrainingStartTime": at, "LastModifiedTime": at,
			"AlgorithmSpecification": map[string]any{"TrainingImage": "bench/train:1", "TrainingInputMode": "File"},
			"ResourceConfig":         map[string]any{"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
			"StoppingCondition":      map[string]any{"MaxRuntimeInSeconds": 86400},
			"RoleArn":                "arn:aws:iam::000000000000:role/SageMakerRole",
			"SecondaryStatusTransitions": []map[string]any{
				{"Status": "Starting", "StartTime": at, "StatusMessage": "Preparing the instances for training"},
				{"Status": "Training", "StartTime": at, "StatusMessage": "Training image download completed. Training in progress."},
			},
		})
	case "ListTrainingJobs":
		s.list(w, in)
	case "StopTrainingJob":
		awsJSON(w, map[string]any{})
	case "ListTags":
		awsJSON(w, map[string]any{"Tags": []any{}})
	case "DescribeLogStreams":
		awsJSON(w, map[string]any{"logStreams": []any{}})
	case "GetLogEvents":
		awsJSON(w, map[string]any{"events": []any{}, "nextForwardToken": "f/0", "nextBackwardToken": "b/0"})
	default:
		awsError(w, http.StatusBadRequest, "UnknownOperationException", "the stand-in endpoint does not serve "+target)
	}
}

// list answers ListTrainingJobs: the jobs modified after
// LastModifiedTimeAfter (a job is modified once, when it is created), by
// name, MaxResults (default 10) a page.
func (s *StandIn) list(w http.ResponseWriter, in map[string]any) {
	var after time.Time
	if v, ok := in["LastModifiedTimeAfter"].(float64); ok {
		after = time.UnixMilli(int64(v * 1000))
	}
	limit := 10
	if v, ok := in["MaxResults"].(float64); ok && v >= 1 && v <= 100 {
		limit = int(v)
	}
	start := 0
	if v, ok := in["NextToken"].(string); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			awsError(w, http.StatusBadRequest, "ValidationException", "Invalid pagination token.")
			return
		}
		start = n
	}
	s.mu.Lock()
	var names []string
	for name, created := range s.jobs {
		if created.After(after) {
			names = append(names, name)
		}
	}
	jobs := maps.Clone(s.jobs)
	s.mu.Unlock()
	slices.Sort(names)
	start = min(start, len(names))
	end := min(start+limit, len(names))
	page := make([]map[string]any, 0, end-start)
	for _, name := range names[start:end] {
		at := float64(jobs[name].UnixMilli()) / 1000
		page = append(page, map[string]any{"TrainingJobName": name, "TrainingJobArn": standInArnPrefix + name,
			"TrainingJobStatus": "InProgress", "SecondaryStatus": "Training", "CreationTime": at, "LastModifiedTime": at})
	}
	out := map[string]any{"TrainingJobSummaries": page}
	if end < len(names) {
		out["NextToken"] = strconv.Itoa(end)
	}
	awsJSON(w, out)
}

func awsJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_ = json.NewEncoder(w).Encode(v)
}

func awsError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", code)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": code, "message": msg})
}

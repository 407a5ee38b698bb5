// Package storetest is the conformance suite that every store.Store passes:
// store/sqlite's tests run it on temporary files, store/postgres's on
// throwaway schemas. It checks behaviour through the interface only, so it
// holds nothing specific to one database.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
)

// OpenFunc opens the store called name, failing t when it cannot.
//
// Within one call of Run, the first open of a name gives an empty store,
// and opening the same name again after that store was closed gives back
// its data: that is how the suite checks that nothing is lost across a
// restart. Names are short, lowercase letters and digits, unique within one
// Run, so an implementation can use them as file, schema or database names
// below a directory or prefix of its own. The suite closes every store it
// opens; OpenFunc should clean up the data itself (t.TempDir, t.Cleanup).
type OpenFunc func(t *testing.T, name string) store.Store

// Run runs the whole suite against the stores that open returns, each
// check as a parallel subtest on its own store.
func Run(t *testing.T, open OpenFunc) {
	var n atomic.Int64
	tests := []struct {
		name string
		fn   func(t *testing.T, s *suite)
	}{
		{"QueueCRUD", testQueueCRUD},
		{"DeleteQueueWithJobs", testDeleteQueueWithJobs},
		{"EnqueueAndGet", testEnqueueAndGet},
		{"ListJobs", testListJobs},
		{"CountUnfinished", testCountUnfinished},
		{"Code", testCode},
		{"PriorityOrder", testPriorityOrder},
		{"ClaimQueueOrder", testClaimQueueOrder},
		{"ConcurrentClaims", testConcurrentClaims},
		{"ClaimN", testClaimN},
		{"ConcurrentClaimN", testConcurrentClaimN},
		{"ConcurrentClaimNAgents", testConcurrentClaimNAgents},
		{"LeaseExpiry", testLeaseExpiry},
		{"Fencing", testFencing},
		{"Renew", testRenew},
		{"LeaseTokenID", testLeaseTokenID},
		{"ClaimNTokenID", testClaimNTokenID},
		{"QueueScope", testQueueScope},
		{"Lifecycle", testLifecycle},
		{"ExternalIDAndImage", testExternalIDAndImage},
		{"Cancel", testCancel},
		{"Requeue", testRequeue},
		{"EventPath", testEventPath},
		{"Logs", testLogs},
		{"Agents", testAgents},
		{"Reopen", testReopen},
		{"InvalidInput", testInvalidInput},
		{"EmptyReads", testEmptyReads},
		{"OddText", testOddText},
		{"MaxRunning", testMaxRunning},
		{"MaxRunningConcurrent", testMaxRunningConcurrent},
		{"IdempotentEnqueue", testIdempotentEnqueue},
		{"Release", testRelease},
		{"Tokens", testTokens},
		{"QueuePolicy", testQueuePolicy},
		{"Transitions", testTransitions},
		{"ConcurrentTransitions", testConcurrentTransitions},
		{"TransitionsSameJob", testTransitionsSameJob},
		{"TransitionsMixed", testTransitionsMixed},
		{"ClaimNPasses", testClaimNPasses},
		{"TransitionsMany", testTransitionsMany},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := &suite{open: open, name: fmt.Sprintf("store%d", n.Add(1))}
			s.Store = s.reopen(t)
			tc.fn(t, s)
		})
	}
}

// suite is one subtest's store and the helpers that drive it.
type suite struct {
	store.Store
	open OpenFunc
	name string
}

// reopen opens the suite's store (again), closing it at the end of the test.
func (s *suite) reopen(t *testing.T) store.Store {
	t.Helper()
	st := s.open(t, s.name)
	if st == nil {
		t.Fatalf("open(%q) returned nil", s.name)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// ctx is the context for one test: canceled when the test ends.
func ctx(t *testing.T) context.Context { return t.Context() }

// ttl is a lease long enough never to expire during a test.
const ttl = time.Hour

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

func (s *suite) queue(t *testing.T, name string) job.Queue {
	t.Helper()
	q, err := s.CreateQueue(ctx(t), job.Queue{Name: name, Resource: job.LocalProcess})
	if err != nil {
		t.Fatalf("creating queue %s: %v", name, err)
	}
	return q
}

// spec is a small valid job spec.
func spec(i int) job.Spec {
	return job.Spec{Image: fmt.Sprintf("example/train:%d", i), Args: []string{"--step", fmt.Sprint(i)}}
}

func (s *suite) enqueue(t *testing.T, queue string, p job.Priority) job.Job {
	t.Helper()
	j, err := s.Enqueue(ctx(t), job.Job{ID: job.NewID("j"), Queue: queue, Priority: p, Spec: spec(0)}, nil)
	if err != nil {
		t.Fatalf("enqueueing into %s: %v", queue, err)
	}
	return j
}

func (s *suite) claim(t *testing.T, agent string, queues ...string) job.Job {
	t.Helper()
	j, err := s.Claim(ctx(t), store.ClaimRequest{Agent: agent, Queues: queues, TTL: ttl})
	if err != nil {
		t.Fatalf("agent %s claiming from %v: %v", agent, queues, err)
	}
	if j.Lease == nil {
		t.Fatalf("claimed job %s has no lease", j.ID)
	}
	return j
}

// move transitions the held job j through states, returning it as it ends.
func (s *suite) move(t *testing.T, j job.Job, token int64, states ...job.State) job.Job {
	t.Helper()
	for _, to := range states {
		var err error
		j, err = s.Transition(ctx(t), store.Update{JobID: j.ID, Token: token, To: to, Reason: "to " + string(to), Actor: "agent-test"})
		if err != nil {
			t.Fatalf("moving job to %s: %v", to, err)
		}
		if j.State != to {
			t.Fatalf("after moving: got state %s, want %s", j.State, to)
		}
	}
	return j
}

func (s *suite) get(t *testing.T, id string) job.Job {
	t.Helper()
	j, err := s.GetJob(ctx(t), id)
	if err != nil {
		t.Fatalf("getting job %s: %v", id, err)
	}
	return j
}

func ids(js []job.Job) []string {
	out := make([]string, len(js))
	for i, j := range js {
		out[i] = j.ID
	}
	return out
}

// normalize makes equal values compare equal across databases that format
// JSON or keep time zones their own way.
func normalize(j job.Job) job.Job {
	j.Spec.RunConfig = compact(j.Spec.RunConfig)
	j.CreatedAt, j.UpdatedAt = j.CreatedAt.UTC(), j.UpdatedAt.UTC()
	if j.Lease != nil {
		l := *j.Lease
		l.ExpiresAt = l.ExpiresAt.UTC()
		j.Lease = &l
	}
	if j.Events != nil {
		evs := make([]job.Event, len(j.Events))
		for i, e := range j.Events {
			e.At = e.At.UTC()
			evs[i] = e
		}
		j.Events = evs
	}
	return j
}

func compact(b json.RawMessage) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return b
	}
	out, _ := json.Marshal(v) // sorts object keys
	return out
}

func sameJob(t *testing.T, what string, got, want job.Job) {
	t.Helper()
	got, want = normalize(got), normalize(want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\ngot  %+v\nwant %+v", what, got, want)
	}
}

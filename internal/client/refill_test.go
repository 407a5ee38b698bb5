package client

import (
	"bytes"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/job"
)

// fill is a Refill that notes what it is asked and given.
type fill struct {
	mu      sync.Mutex
	asked   []int // freed, for each Claim
	claimed []api.Claimed
	freed   [][]api.LeaseRef
	errs    []error
}

func (f *fill) Claim(freed int) (api.Claim, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, freed)
	return api.Claim{Agent: "a1", Queues: []string{"q"}, Max: freed}, true
}

func (f *fill) Claimed(cs []api.Claimed, freed []api.LeaseRef, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.claimed = append(f.claimed, cs...)
	f.freed = append(f.freed, freed)
	f.errs = append(f.errs, err)
}

// TestFinalMoveClaimsForTheSlotItFrees checks that a final move reported
// with a Refill carries a claim for one job, whose answer the Refill gets
// before the move's caller gets its own, and that a move that does not end
// its job carries none.
func TestFinalMoveClaimsForTheSlotItFrees(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, cs := claimedSetup(t, func(h http.Handler) http.Handler { return h }, 1, 1)
	j := cs[0].Job
	f := &fill{}
	if st, err := c.Send(ctx, j.ID, api.Transition{Token: j.Lease.Token, To: job.Submitting, Reason: "submitting"}, nil, f).Wait(); err != nil || st != job.Submitting {
		t.Fatalf("submitting: got %s, %v", st, err)
	}
	f.mu.Lock()
	asked := len(f.asked)
	f.mu.Unlock()
	if asked != 0 {
		t.Fatalf("a move that does not end its job asked for %d claims, want none", asked)
	}
	if st, err := c.Send(ctx, j.ID, api.Transition{Token: j.Lease.Token, To: job.Finished, Reason: "done"}, nil, f).Wait(); err != nil || st != job.Finished {
		t.Fatalf("finishing: got %s, %v", st, err)
	}
	// No wait: the Refill was answered before the move was.
	f.mu.Lock()
	defer f.mu.Unlock()
	if !slices.Equal(f.asked, []int{1}) || len(f.freed) != 1 || !slices.Equal(f.freed[0], []api.LeaseRef{{Job: j.ID, Token: j.Lease.Token}}) || f.errs[0] != nil {
		t.Fatalf("the refill: got asked %v, freed %v, errors %v; want asked [1], freed [[%s]], no error", f.asked, f.freed, f.errs, j.ID)
	}
	if len(f.claimed) != 1 || f.claimed[0].Job.ID == j.ID || f.claimed[0].Job.Lease == nil || f.claimed[0].Job.Lease.Agent != "a1" {
		t.Fatalf("the refill's jobs: got %d (%+v); want the other job, held by a1", len(f.claimed), f.claimed)
	}
}

// TestFinalMoveClaimAgainstAnOlderServer checks that a client whose final move
// carries a claim, sent to a server that does not know the field (and
// refuses the request as invalid, naming it), sends its moves again without
// it, lands them, and sends no claim with its moves from then on.
func TestFinalMoveClaimAgainstAnOlderServer(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	var refused atomic.Int64
	old := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v1/transitions" {
				b, _ := io.ReadAll(r.Body)
				r.Body = io.NopCloser(bytes.NewReader(b))
				if bytes.Contains(b, []byte(`"claim":`)) {
					refused.Add(1)
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusBadRequest)
					_, _ = io.WriteString(w, `{"code":"invalid","message":"invalid: request body: json: unknown field \"claim\""}`)
					return
				}
			}
			h.ServeHTTP(w, r)
		})
	}
	c, cs := claimedSetup(t, old, 2, 1)
	f := &fill{}
	for _, cl := range cs {
		j := cl.Job
		st, err := c.Send(ctx, j.ID, api.Transition{Token: j.Lease.Token, To: job.Failed, Reason: "failed"}, nil, f).Wait()
		if err != nil || st != job.Failed {
			t.Fatalf("failing job %s against an older server: got %s, %v; want failed", j.ID, st, err)
		}
	}
	if got := refused.Load(); got != 1 {
		t.Fatalf("requests refused for their claim: got %d, want 1: the client stops sending it", got)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.freed) != 0 {
		t.Fatalf("the refill was given %v, %v; want nothing from a server that claimed nothing", f.claimed, f.errs)
	}
}

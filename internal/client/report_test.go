package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/server"
	"github.com/slipway-ml/slipway/internal/store/sqlite"
)

// gate is a front of the server that holds the first maxInFlight POST
// /v1/transitions until open is closed, and notes how many moves each such
// request carried.
type gate struct {
	next    http.Handler
	arrived chan int // the number of each request it holds, as it arrives
	open    chan struct{}

	mu    sync.Mutex
	sizes []int
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v1/transitions" {
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		var req api.Transitions
		_ = json.Unmarshal(b, &req)
		g.mu.Lock()
		g.sizes = append(g.sizes, len(req.Transitions))
		n := len(g.sizes)
		g.mu.Unlock()
		if n <= maxInFlight {
			g.arrived <- n
			<-g.open
		}
	}
	g.next.ServeHTTP(w, r)
}

func (c *Client) waitingReports() int {
	c.reports.mu.Lock()
	defer c.reports.mu.Unlock()
	return len(c.reports.waiting)
}

// serverOnSQLite starts a server on a fresh SQLite store, behind front.
func serverOnSQLite(t *testing.T, front func(http.Handler) http.Handler) *httptest.Server {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	srv, err := server.New(server.Config{Store: st, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(front(srv))
	t.Cleanup(hs.Close)
	return hs
}

// claimedSetup is a server on SQLite behind front, a client, and n jobs
// of queue q claimed by agent a1, with queued more left queued.
func claimedSetup(t *testing.T, front func(http.Handler) http.Handler, n, queued int) (*Client, []api.Claimed) {
	t.Helper()
	ctx := t.Context()
	c, err := New(serverOnSQLite(t, front).URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateQueue(ctx, api.CreateQueue{Name: "q", Resource: job.LocalProcess}); err != nil {
		t.Fatal(err)
	}
	for range n + queued {
		if _, err := c.Enqueue(ctx, api.Enqueue{Queue: "q", Spec: job.Spec{Entrypoint: []string{"true"}}}); err != nil {
			t.Fatal(err)
		}
	}
	cs, err := c.ClaimMany(ctx, api.Claim{Agent: "a1", Queues: []string{"q"}, Max: n})
	if err != nil || len(cs) != n {
		t.Fatalf("claiming %d jobs: got %d, %v", n, len(cs), err)
	}
	return c, cs
}

// TestReportsShareARequest checks that a lone move is sent at once, as is
// one made while fewer than maxInFlight requests are on their way, that
// the moves reported while as many are all go in the next one, each caller
// getting its own answer (a stale token refused alone), and that a caller
// who gives up before its move is sent takes it back.
func TestReportsShareARequest(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	var g *gate
	const n = 7
	c, cs := claimedSetup(t, func(srv http.Handler) http.Handler {
		g = &gate{next: srv, arrived: make(chan int, maxInFlight), open: make(chan struct{})}
		return g
	}, n, 0)
	t.Cleanup(func() {
		select {
		case <-g.open:
		default:
			close(g.open)
		}
	})

	type answer struct {
		st  job.State
		err error
	}
	answers := make([]chan answer, n)
	report := func(ctx context.Context, i int, token int64) {
		answers[i] = make(chan answer, 1)
		go func() {
			st, err := c.Send(ctx, cs[i].Job.ID, api.Transition{Token: token, To: job.Submitting, Reason: "submitting"}, nil, nil).Wait()
			answers[i] <- answer{st, err}
		}()
	}
	// Alone, each of the first moves goes at once, and is held there.
	for i := range maxInFlight {
		report(ctx, i, cs[i].Job.Lease.Token)
		if got := <-g.arrived; got != i+1 {
			t.Fatalf("move %d arrived as request %d", i, got)
		}
	}
	// The next ones wait for them, one with a stale token, one whose
	// caller gives up before it is sent.
	for i := maxInFlight; i < 5; i++ {
		report(ctx, i, cs[i].Job.Lease.Token)
	}
	report(ctx, 5, cs[5].Job.Lease.Token+1)
	quit, giveUp := context.WithCancel(ctx)
	report(quit, 6, cs[6].Job.Lease.Token)
	want := n - maxInFlight
	for c.waitingReports() < want {
		time.Sleep(time.Millisecond)
	}
	giveUp()
	if a := <-answers[6]; !errors.Is(a.err, context.Canceled) {
		t.Fatalf("a move whose caller gave up: got %s, %v; want %v", a.st, a.err, context.Canceled)
	}
	if got := c.waitingReports(); got != want-1 {
		t.Fatalf("moves waiting after one was taken back: got %d, want %d", got, want-1)
	}
	close(g.open)

	for i := range 5 {
		a := <-answers[i]
		if a.err != nil || a.st != job.Submitting {
			t.Errorf("move %d: got %s, %v; want submitting", i, a.st, a.err)
		}
	}
	if a := <-answers[5]; !errors.Is(a.err, job.ErrLeaseLost) {
		t.Errorf("move with a stale token: got %v, want %v", a.err, job.ErrLeaseLost)
	}
	g.mu.Lock()
	sizes := append([]int(nil), g.sizes...)
	g.mu.Unlock()
	if !slices.Equal(sizes, []int{1, 1, want - 1}) {
		t.Errorf("moves per request: got %v, want [1 1 %d]", sizes, want-1)
	}
	if j, err := c.Job(ctx, cs[6].Job.ID); err != nil || j.State != job.Claimed {
		t.Errorf("the job whose move was taken back: got %s, %v; want still claimed", j.State, err)
	}
}

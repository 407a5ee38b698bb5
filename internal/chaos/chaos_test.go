package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/client"
	"github.com/slipway-ml/slipway/internal/job"
)

// leaseTTL is the servers' lease: short, so that the jobs of killed agents
// come back quickly.
const leaseTTL = time.Second

// cluster is one server process and its agent processes, on one database.
type cluster struct {
	t      *testing.T
	dir    string
	db     string
	addr   string
	url    string
	c      *client.Client
	env    []string // the agents' extra environment
	queues []string
	rng    *rand.Rand

	mu     sync.Mutex // guards server and agents, replaced by the chaos loop
	server *proc
	agents []*proc
	n      int // processes started, for log names

	agentKills, serverKills, pgRestarts int
}

func newCluster(t *testing.T, db string, seed uint64, env []string, queues ...string) *cluster {
	dir := t.TempDir()
	t.Cleanup(func() { printLogs(t, dir) })
	addr := freeAddr(t)
	// The servers require tokens, as `slipway server` does by default: the
	// suite makes an admin token on the database first, as an operator
	// would, and its client and agents send it.
	token := adminToken(t, db)
	env = append(slices.Clone(env), "SLIPWAY_TOKEN="+token)
	c, err := client.New("http://"+addr, client.WithToken(token))
	if err != nil {
		t.Fatal(err)
	}
	cl := &cluster{t: t, dir: dir, db: db, addr: addr, url: "http://" + addr, c: c, env: env, queues: queues,
		rng: rand.New(rand.NewPCG(seed, seed^0x5eed))}
	cl.startServer()
	return cl
}

// adminToken runs `slipway token create --role admin --db db` and returns
// the secret it prints.
func adminToken(t *testing.T, db string) string {
	t.Helper()
	b, _ := json.Marshal([]string{"token", "create", "--role", "admin", "--name", "chaos", "--db", db})
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), mainArgs+"="+string(b))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("slipway token create --db: %v: %s", err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

func (cl *cluster) startServer() {
	cl.mu.Lock()
	cl.n++
	cl.server = spawn(cl.t, cl.dir, fmt.Sprintf("server-%d", cl.n), nil,
		"server", "--addr", cl.addr, "--db", cl.db, "--lease-ttl", leaseTTL.String())
	cl.mu.Unlock()
	waitHealthy(cl.t, cl.url)
}

func (cl *cluster) startAgent(maxJobs int) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	cl.n++
	args := []string{"agent", "--server", cl.url, "--max-jobs", strconv.Itoa(maxJobs), "--name", fmt.Sprintf("chaos-%d", cl.n)}
	for _, q := range cl.queues {
		args = append(args, "-q", q)
	}
	// Each agent gets its own TMPDIR, so its local runs have their own directories.
	tmp := filepath.Join(cl.dir, fmt.Sprintf("tmp-%d", cl.n))
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		cl.t.Fatal(err)
	}
	cl.agents = append(cl.agents, spawn(cl.t, cl.dir, fmt.Sprintf("agent-%d", cl.n), append([]string{"TMPDIR=" + tmp}, cl.env...), args...))
}

// killAgent SIGKILLs a random agent and starts another in its place.
func (cl *cluster) killAgent(maxJobs int) {
	cl.mu.Lock()
	i := cl.rng.IntN(len(cl.agents))
	victim := cl.agents[i]
	cl.agents = slices.Delete(cl.agents, i, i+1)
	cl.agentKills++
	cl.mu.Unlock()
	victim.kill()
	cl.startAgent(maxJobs)
}

// killServer SIGKILLs the server and starts it again on the same database
// and address.
func (cl *cluster) killServer() {
	cl.mu.Lock()
	s := cl.server
	cl.serverKills++
	cl.mu.Unlock()
	s.kill()
	time.Sleep(time.Duration(100+cl.rng.IntN(400)) * time.Millisecond)
	cl.startServer()
}

// restartPostgres restarts the local PostgreSQL cluster that scripts/postgres.sh
// set up, when this test may: as root, with pg_ctlcluster and a cluster on
// the DSN's port. It says why not otherwise.
func (cl *cluster) restartPostgres(port string) error {
	if os.Geteuid() != 0 {
		return errors.New("not root")
	}
	out, err := exec.Command("pg_lsclusters", "-h").Output()
	if err != nil {
		return fmt.Errorf("pg_lsclusters: %w", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && f[2] == port && f[3] == "online" {
			if out, err := exec.Command("pg_ctlcluster", f[0], f[1], "restart").CombinedOutput(); err != nil {
				return fmt.Errorf("pg_ctlcluster %s %s restart: %v: %s", f[0], f[1], err, out)
			}
			cl.pgRestarts++
			return nil
		}
	}
	return fmt.Errorf("no online cluster on port %s", port)
}

// retry calls fn until it is done or fails with an answer from the server,
// waiting while the server is down (restarted by the chaos loop). Each try
// gets callTimeout: a request caught by a server kill may wait forever on a
// connection nobody answers.
func retry[T any](ctx context.Context, fn func(ctx context.Context) (T, error)) (T, error) {
	for {
		callCtx, cancel := context.WithTimeout(ctx, callTimeout)
		v, err := fn(callCtx)
		timedOut := callCtx.Err() != nil
		cancel()
		if ctx.Err() != nil {
			return v, err
		}
		if err == nil || (!client.IsUnreachable(err) && !timedOut) {
			return v, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// callTimeout bounds one request of the suite's own client.
const callTimeout = 5 * time.Second

// enqueueAll enqueues n jobs from spec(i), each under its own idempotency
// key and retried with it until the server acknowledges it: a retry after
// a lost answer never makes a second job. It returns the acknowledged ids.
func (cl *cluster) enqueueAll(ctx context.Context, n int, spec func(i int) api.Enqueue) ([]string, error) {
	ids := make([]string, 0, n)
	prefix := job.NewID("k-")
	for i := range n {
		j, err := retry(ctx, func(ctx context.Context) (job.Job, error) {
			j, _, err := cl.c.EnqueueOnce(ctx, fmt.Sprintf("%s-%d", prefix, i), spec(i))
			return j, err
		})
		if err != nil {
			return ids, fmt.Errorf("enqueueing job %d: %w", i, err)
		}
		ids = append(ids, j.ID)
	}
	return ids, nil
}

// waitFinal waits until every job in ids is in a final state, or the
// deadline; it returns the jobs with their events.
func (cl *cluster) waitFinal(ctx context.Context, ids []string, deadline time.Time) map[string]job.Job {
	for {
		done := true
		for _, id := range ids {
			j, err := retry(ctx, func(ctx context.Context) (job.Job, error) { return cl.c.Job(ctx, id) })
			if err != nil || !j.State.Terminal() {
				done = false
				break
			}
		}
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	jobs := map[string]job.Job{}
	for _, id := range ids {
		j, err := retry(ctx, func(ctx context.Context) (job.Job, error) { return cl.c.Job(ctx, id) })
		if err != nil {
			cl.t.Errorf("reading job %s: %v", id, err)
			continue
		}
		jobs[id] = j
	}
	return jobs
}

// pathError says why events do not form one path through the lifecycle,
// or returns nil.
func pathError(j job.Job) error {
	if len(j.Events) == 0 {
		return errors.New("no events")
	}
	var prev job.Event
	for i, e := range j.Events {
		if i == 0 {
			if e.From != "" || e.To != job.Queued {
				return fmt.Errorf("first event %s → %s, want from nothing to queued", e.From, e.To)
			}
		} else {
			if e.From != prev.To {
				return fmt.Errorf("event %d from %s, but event %d went to %s", i, e.From, i-1, prev.To)
			}
			if e.Seq <= prev.Seq {
				return fmt.Errorf("event %d: seq %d after %d", i, e.Seq, prev.Seq)
			}
			if !job.CanTransition(e.From, e.To) {
				return fmt.Errorf("event %d: %s → %s is not a move of the lifecycle", i, e.From, e.To)
			}
		}
		prev = e
	}
	if prev.To != j.State {
		return fmt.Errorf("last event goes to %s, but the job is %s", prev.To, j.State)
	}
	return nil
}

// staleHolder plays an agent that freezes: it claims a job, stops renewing,
// and once another holder or the reaper took the job, tries to move it,
// log to it and renew it with its old token. It returns how many such
// updates the server refused with lease lost; any other answer is an error.
func (cl *cluster) staleHolder(ctx context.Context, name string, queue string) (refused int, err error) {
	top := ctx
	claimed, err := retry(ctx, func(ctx context.Context) (api.Claimed, error) {
		return cl.c.Claim(ctx, api.Claim{Agent: name, Queues: []string{queue}, Wait: 2 * time.Second})
	})
	if errors.Is(err, job.ErrNoJob) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("%s claiming: %w", name, err)
	}
	id, token := claimed.Job.ID, claimed.Job.Lease.Token
	deadline := time.Now().Add(30 * time.Second)
	for {
		j, err := retry(ctx, func(ctx context.Context) (job.Job, error) { return cl.c.Job(ctx, id) })
		if err != nil {
			return 0, err
		}
		if j.Lease == nil || j.Lease.Token != token {
			break
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s: the lease on job %s never went away", name, id)
		}
		time.Sleep(100 * time.Millisecond)
	}
	stale := []func() error{
		func() error {
			_, err := cl.c.Transition(ctx, id, api.Transition{Token: token, To: job.Finished, Reason: "stale"})
			return err
		},
		func() error {
			return cl.c.AppendLogs(ctx, id, token, []job.LogLine{{Stream: "stdout", Text: "stale line from " + name}})
		},
		func() error { _, err := cl.c.Renew(ctx, id, token); return err },
		func() error { _, err := cl.c.Release(ctx, id, token, "stale"); return err },
	}
	for _, try := range stale {
		_, err := retry(top, func(c context.Context) (struct{}, error) { ctx = c; return struct{}{}, try() })
		if !errors.Is(err, job.ErrLeaseLost) {
			return refused, fmt.Errorf("%s: update of job %s with stale token %d: got %v, want lease lost", name, id, token, err)
		}
		refused++
	}
	return refused, nil
}

// checkNoStaleEffects fails the test when an event or a log line of a
// stale holder made it into a job.
func checkNoStaleEffects(t *testing.T, c *client.Client, j job.Job) {
	t.Helper()
	for _, e := range j.Events {
		if strings.HasPrefix(e.Actor, "stale-") && e.To != job.Claimed {
			t.Errorf("job %s: event %s → %s by stale holder %s was applied", j.ID, e.From, e.To, e.Actor)
		}
	}
	l, err := retry(t.Context(), func(ctx context.Context) (api.Logs, error) { return c.Logs(ctx, j.ID, 0, 0, 0) })
	if err != nil {
		t.Errorf("reading logs of %s: %v", j.ID, err)
		return
	}
	for _, line := range l.Lines {
		if strings.Contains(line.Text, "stale line from") {
			t.Errorf("job %s: a stale holder's log line was stored: %q", j.ID, line.Text)
		}
	}
}

// heldAtOnce is the most jobs held at once, from the claim and release
// events of jobs.
func heldAtOnce(jobs map[string]job.Job) int {
	type step struct {
		at   time.Time
		seq  int64
		diff int
	}
	var steps []step
	for _, j := range jobs {
		for _, e := range j.Events {
			switch {
			case e.To == job.Claimed:
				steps = append(steps, step{e.At, e.Seq, +1})
			case e.From.Held() && !e.To.Held():
				steps = append(steps, step{e.At, e.Seq, -1})
			}
		}
	}
	slices.SortFunc(steps, func(a, b step) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.diff - b.diff // a release at the same instant first
	})
	held, most := 0, 0
	for _, s := range steps {
		held += s.diff
		most = max(most, held)
	}
	return most
}

// expiredFrom counts the leases the reaper took back, by the state the job
// was in: where the killed agents were when they died.
func expiredFrom(jobs map[string]job.Job) map[job.State]int {
	out := map[job.State]int{}
	for _, j := range jobs {
		for _, e := range j.Events {
			if e.To == job.Queued && e.Actor == "server" && strings.Contains(e.Reason, "expired") {
				out[e.From]++
			}
		}
	}
	return out
}

func seed(t *testing.T) uint64 {
	if v := os.Getenv("SLIPWAY_CHAOS_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("SLIPWAY_CHAOS_SEED=%q: %v", v, err)
		}
		return s
	}
	return uint64(time.Now().UnixNano())
}

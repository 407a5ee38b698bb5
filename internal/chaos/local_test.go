package chaos

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/job"
)

// The local-process round: many short jobs, agents SIGKILLed at random
// points and restarted, the server killed and restarted, PostgreSQL
// restarted. The rounds run one after the other, not in parallel: each
// already runs a server and three agents on the two cores.
const (
	localJobs       = 200
	localAgents     = 3
	localMaxJobs    = 4
	localMaxRunning = 6 // the queue's cap across the agents' 12 slots
	agentKillBudget = 12
	serverKills     = 2
)

func TestChaosLocalProcessSQLite(t *testing.T) {
	runLocalRound(t, filepath.Join(t.TempDir(), "slipway.db"), "")
}

func TestChaosLocalProcessPostgres(t *testing.T) {
	base := os.Getenv("SLIPWAY_TEST_POSTGRES")
	if base == "" {
		t.Skip("SLIPWAY_TEST_POSTGRES is not set (make test sets it and starts PostgreSQL)")
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("SLIPWAY_TEST_POSTGRES: %v", err)
	}
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	runLocalRound(t, schemaDSN(t, base), port)
}

// schemaDSN makes a schema of the test's own in the test database, dropped
// at the end, and returns a DSN whose search_path is that schema.
func schemaDSN(t *testing.T, base string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connecting to the test PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	schema := strings.ToLower(job.NewID("slipway_chaos_"))
	if _, err := conn.Exec(ctx, `CREATE SCHEMA `+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatalf("creating schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, `DROP SCHEMA `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	u, _ := url.Parse(base)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// runLocalRound runs the local-process round on db; pgPort, when not
// empty, is the port of a PostgreSQL cluster to restart midway.
func runLocalRound(t *testing.T, db, pgPort string) {
	s := seed(t)
	t.Logf("chaos seed %d (rerun with SLIPWAY_CHAOS_SEED=%d)", s, s)
	cl := newCluster(t, db, s, nil, "chaos")
	ctx := t.Context()
	limit := localMaxRunning
	if _, err := cl.c.CreateQueue(ctx, api.CreateQueue{Name: "chaos", Resource: job.LocalProcess, MaxRunning: &limit}); err != nil {
		t.Fatal(err)
	}
	runs := filepath.Join(cl.dir, "runs.txt")
	sleeps := make([]int, localJobs)
	for i := range sleeps {
		sleeps[i] = 20 + cl.rng.IntN(300) // milliseconds
	}
	for range localAgents {
		cl.startAgent(localMaxJobs)
	}

	type enqueued struct {
		ids []string
		err error
	}
	enq := make(chan enqueued, 1)
	go func() {
		ids, err := cl.enqueueAll(ctx, localJobs, func(i int) api.Enqueue {
			// Each run appends its job and attempt first: two lines for one
			// attempt mean it ran twice.
			script := fmt.Sprintf(`echo "$SLIPWAY_JOB_ID $SLIPWAY_ATTEMPT" >> %s; sleep %d.%03d; echo ok`, runs, sleeps[i]/1000, sleeps[i]%1000)
			return api.Enqueue{Queue: "chaos", Spec: job.Spec{Entrypoint: []string{"sh", "-c", script}}}
		})
		enq <- enqueued{ids, err}
	}()

	// Stale holders freeze on a claim now and then, and try their old token.
	var staleRefused int
	staleErrs := make(chan error, 1)
	stop := make(chan struct{})
	var bg sync.WaitGroup
	staleRNG := rand.New(rand.NewPCG(s, 1))
	staleCtx, stopStale := context.WithCancel(ctx)
	defer stopStale()
	bg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				staleErrs <- nil
				return
			case <-time.After(time.Duration(300+staleRNG.IntN(700)) * time.Millisecond):
			}
			n, err := cl.staleHolder(staleCtx, fmt.Sprintf("stale-%d", i), "chaos")
			staleRefused += n
			if staleCtx.Err() != nil {
				staleErrs <- nil
				return
			}
			if err != nil {
				staleErrs <- err
				return
			}
		}
	})

	// The chaos: kill an agent, now and then the server or PostgreSQL.
	var pgSkipped string
	bg.Go(func() {
		actions := 0
		for cl.agentKills < agentKillBudget {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(250+cl.rng.IntN(500)) * time.Millisecond):
			}
			actions++
			switch {
			case actions%6 == 3 && cl.serverKills < serverKills:
				cl.killServer()
			case actions == 8 && pgPort != "":
				if err := cl.restartPostgres(pgPort); err != nil {
					pgSkipped = err.Error()
				}
			default:
				cl.killAgent(localMaxJobs)
			}
		}
	})

	e := <-enq
	if e.err != nil {
		close(stop)
		bg.Wait()
		t.Fatal(e.err)
	}
	jobs := cl.waitFinal(ctx, e.ids, time.Now().Add(4*time.Minute))
	close(stop)
	stopStale()
	bg.Wait()
	if err := <-staleErrs; err != nil {
		t.Error(err)
	}

	counts := map[string]int{}
	f, err := os.Open(runs)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		counts[strings.TrimSpace(sc.Text())]++
	}
	f.Close()

	var lost, duplicates, finished, abandoned []string
	for _, id := range e.ids {
		j := jobs[id]
		if err := pathError(j); err != nil {
			t.Errorf("job %s: events do not form a lifecycle path: %v", id, err)
		}
		checkNoStaleEffects(t, cl.c, j)
		for a := 1; a <= j.Attempt; a++ {
			if n := counts[fmt.Sprintf("%s %d", id, a)]; n > 1 {
				duplicates = append(duplicates, fmt.Sprintf("%s attempt %d ran %d times", id, a, n))
			}
		}
		key := fmt.Sprintf("%s %d", id, j.Attempt)
		switch {
		case !j.State.Terminal():
			lost = append(lost, fmt.Sprintf("%s (%s: %s)", id, j.State, j.Reason))
		case j.State == job.Finished:
			finished = append(finished, id)
			if counts[key] != 1 {
				t.Errorf("job %s finished, but its attempt %d ran %d times, want once", id, j.Attempt, counts[key])
			}
		case j.State == job.Failed && strings.Contains(j.Reason, "lost track"):
			abandoned = append(abandoned, id)
		default:
			t.Errorf("job %s ended %s (%s), want finished, or failed as lost track when its agent died", id, j.State, j.Reason)
		}
	}
	all, err := retry(ctx, func(ctx context.Context) ([]job.Job, error) { return cl.c.Jobs(ctx, "chaos", "", 0) })
	if err != nil {
		t.Fatal(err)
	}
	most := heldAtOnce(jobs)

	var b strings.Builder
	fmt.Fprintf(&b, "chaos local-process round (%s), seed %d:\n", storeName(pgPort), s)
	b.WriteString(figureLine("jobs acknowledged", len(e.ids)))
	b.WriteString(figureLine("jobs stored", len(all)))
	b.WriteString(figureLine("finished", len(finished)))
	b.WriteString(figureLine("abandoned (lost track)", len(abandoned)))
	b.WriteString(figureLine("lost (not final)", len(lost)))
	b.WriteString(figureLine("duplicates (ran twice)", len(duplicates)))
	b.WriteString(figureLine("agent kills (SIGKILL)", cl.agentKills))
	b.WriteString(figureLine("server kills", cl.serverKills))
	if pgPort != "" {
		pg := fmt.Sprint(cl.pgRestarts)
		if pgSkipped != "" {
			pg = "skipped: " + pgSkipped
		}
		b.WriteString(figureLine("postgres restarts", pg))
	}
	b.WriteString(figureLine("stale updates refused", staleRefused))
	b.WriteString(figureLine("leases expired, by state", sortedCounts(expiredFrom(jobs))))
	b.WriteString(figureLine("most held at once", fmt.Sprintf("%d (max_running %d)", most, localMaxRunning)))
	fmt.Print(b.String())
	t.Log(b.String())
	writeFigures(t, b.String())

	if len(lost) > 0 {
		t.Errorf("%d acknowledged jobs never reached a final state: %v", len(lost), lost)
	}
	if len(duplicates) > 0 {
		t.Errorf("attempts that ran more than once: %v", duplicates)
	}
	if len(all) != localJobs {
		t.Errorf("jobs stored: got %d, want %d: one per idempotency key, retries included", len(all), localJobs)
	}
	if most > localMaxRunning {
		t.Errorf("jobs held at once: got %d, want at most the queue's max_running %d", most, localMaxRunning)
	}
	if staleRefused == 0 {
		t.Errorf("no stale holder got to try its old token: the fencing went unchecked")
	}
	if len(finished) < localJobs/2 {
		t.Errorf("finished: got %d of %d, want most: the kills are too frequent to say anything", len(finished), localJobs)
	}
}

func storeName(pgPort string) string {
	if pgPort != "" {
		return "PostgreSQL"
	}
	return "SQLite"
}

func sortedCounts(m map[job.State]int) string {
	var parts []string
	for s, n := range m {
		parts = append(parts, fmt.Sprintf("%s %d", s, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

package chaos

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awssm "github.com/aws/aws-sdk-go-v2/service/sagemaker"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/dockertest"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/localaws"
	"github.com/slipway-ml/slipway/internal/localaws/localawstest"
	"github.com/slipway-ml/slipway/internal/runner"
)

// The SageMaker round: a few jobs on a sagemaker queue, run as training jobs
// by the local AWS endpoint on the local Docker engine, while the test
// SIGKILLs the agent that holds a job at a chosen point of its life (just
// claimed, submitting, running, or with its training job over but not yet
// reported) and kills the server. SageMaker jobs outlive their agent, so
// every job must finish, each attempt with exactly one training job.
const (
	smJobs        = 8
	smAgents      = 2
	smMaxJobs     = 4
	smAgentKills  = 8
	smServerKills = 2
	smStaleMax    = 2 // stale holders that got a job: each costs a lease TTL
	smQueue       = "chaos-sm"
)

// smPhases are the points of a job's life at which an agent is killed.
var smPhases = []string{"claim", "submit", "running", "report"}

func TestChaosSageMaker(t *testing.T) {
	docker := dockertest.Client(t)
	img := dockertest.BaseImage(t, docker)
	// Throttling makes the agents' calls retry, widening the windows
	// between a claim, a CreateTrainingJob and its report; the start delay
	// keeps training jobs in Starting a while, as a real instance launch.
	faults := localaws.Faults{ThrottleRate: 0.15, StartDelay: 300 * time.Millisecond}
	local := localawstest.Start(t, localaws.Config{Docker: docker, StopOnShutdown: true, Faults: faults})

	db, storeKind := filepath.Join(t.TempDir(), "slipway.db"), "SQLite"
	if base := os.Getenv("SLIPWAY_TEST_POSTGRES"); base != "" {
		db, storeKind = schemaDSN(t, base), "PostgreSQL"
	}
	s := seed(t)
	t.Logf("chaos seed %d (rerun with SLIPWAY_CHAOS_SEED=%d)", s, s)
	env := []string{"AWS_ENDPOINT_URL=" + local.URL(), "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_REGION=us-east-1"}
	cl := newCluster(t, db, s, env, smQueue)
	ctx := t.Context()
	if _, err := cl.c.CreateQueue(ctx, api.CreateQueue{Name: smQueue, Resource: job.SageMaker, Config: []byte(
		`{"RoleArn": "arn:aws:iam::000000000000:role/Chaos", "OutputDataConfig": {"S3OutputPath": "s3://chaos/out"},
		  "ResourceConfig": {"InstanceType": "ml.m4.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 2},
		  "StoppingCondition": {"MaxRuntimeInSeconds": 300}}`)}); err != nil {
		t.Fatal(err)
	}
	sm := awssm.NewFromConfig(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(local.URL()),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")})
	for range smAgents {
		cl.startAgent(smMaxJobs)
	}

	sleeps := make([]int, smJobs)
	for i := range sleeps {
		sleeps[i] = 4000 + cl.rng.IntN(4000) // milliseconds
	}
	type enqueued struct {
		ids []string
		err error
	}
	enq := make(chan enqueued, 1)
	go func() {
		// Two waves, so that some claims come while agents are being killed.
		spec := func(i int) api.Enqueue {
			script := fmt.Sprintf(`echo "start $SLIPWAY_JOB_ID $SLIPWAY_ATTEMPT"; sleep %d.%03d; echo "done $SLIPWAY_JOB_ID"`, sleeps[i]/1000, sleeps[i]%1000)
			return api.Enqueue{Queue: smQueue, Spec: job.Spec{Image: img, Entrypoint: []string{"sh", "-c", script}}}
		}
		first, err := cl.enqueueAll(ctx, smJobs/2, spec)
		if err != nil {
			enq <- enqueued{first, err}
			return
		}
		time.Sleep(2 * time.Second)
		second, err := cl.enqueueAll(ctx, smJobs-smJobs/2, func(i int) api.Enqueue { return spec(smJobs/2 + i) })
		enq <- enqueued{append(first, second...), err}
	}()

	stop := make(chan struct{})
	var bg sync.WaitGroup
	// Stale holders: a frozen agent that claims a job and later tries its token.
	var staleRefused int
	staleErrs := make(chan error, 1)
	staleRNG := rand.New(rand.NewPCG(s, 2))
	staleCtx, stopStale := context.WithCancel(ctx)
	defer stopStale()
	bg.Go(func() {
		got := 0
		for i := 0; got < smStaleMax; i++ {
			select {
			case <-stop:
				staleErrs <- nil
				return
			case <-time.After(time.Duration(200+staleRNG.IntN(800)) * time.Millisecond):
			}
			n, err := cl.staleHolder(staleCtx, fmt.Sprintf("stale-%d", i), smQueue)
			staleRefused += n
			if n > 0 {
				got++
			}
			if staleCtx.Err() != nil {
				break
			}
			if err != nil {
				staleErrs <- err
				return
			}
		}
		staleErrs <- nil
	})

	// The chaos: kill the agent holding a job at a phase, each phase in
	// turn as they come; now and then the server.
	kills := map[string]int{}
	bg.Go(func() {
		for i := 0; cl.agentKills < smAgentKills; i++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(200+cl.rng.IntN(400)) * time.Millisecond):
			}
			if i == 2 || i == 5 {
				if cl.serverKills < smServerKills {
					cl.killServer()
				}
			}
			// The phases killed least so far first, so that each gets its turn.
			phases := slices.Clone(smPhases)
			cl.rng.Shuffle(len(phases), func(i, j int) { phases[i], phases[j] = phases[j], phases[i] })
			slices.SortStableFunc(phases, func(a, b string) int { return kills[a] - kills[b] })
			name, phase, ok := cl.holderAt(ctx, sm, phases, stop)
			if !ok {
				continue
			}
			if cl.killAgentNamed(name, smMaxJobs) {
				kills[phase]++
			}
		}
	})

	e := <-enq
	if e.err != nil {
		close(stop)
		bg.Wait()
		t.Fatal(e.err)
	}
	jobs := cl.waitFinal(ctx, e.ids, time.Now().Add(90*time.Second))
	close(stop)
	stopStale()
	bg.Wait()
	if err := <-staleErrs; err != nil {
		t.Error(err)
	}
	if err := local.SetFaults(localaws.Faults{}); err != nil {
		t.Fatal(err)
	}

	perAttempt, err := trainingJobsByAttempt(ctx, sm)
	if err != nil {
		t.Fatal(err)
	}
	var lost, duplicates, notFinished, logDups []string
	attempts, histogram := 0, map[int]int{}
	for _, id := range e.ids {
		j := jobs[id]
		if err := pathError(j); err != nil {
			t.Errorf("job %s: events do not form a lifecycle path: %v", id, err)
		}
		checkNoStaleEffects(t, cl.c, j)
		for a := 1; a <= j.Attempt; a++ {
			attempts++
			names := perAttempt[attemptKey{id, a}]
			histogram[len(names)]++
			if len(names) > 1 {
				duplicates = append(duplicates, fmt.Sprintf("%s attempt %d: %v", id, a, names))
			}
		}
		switch {
		case !j.State.Terminal():
			lost = append(lost, fmt.Sprintf("%s (%s: %s)", id, j.State, j.Reason))
		case j.State != job.Finished:
			notFinished = append(notFinished, fmt.Sprintf("%s %s (%s)", id, j.State, j.Reason))
		default:
			want := runner.TaskName(j)
			if names := perAttempt[attemptKey{id, j.Attempt}]; len(names) != 1 || names[0] != want || j.ExternalID != want {
				t.Errorf("job %s finished attempt %d as %q with training jobs %v, want exactly [%s]", id, j.Attempt, j.ExternalID, names, want)
			}
			if d := duplicateLines(t, cl, j); d != "" {
				logDups = append(logDups, d)
			}
		}
	}
	for k, names := range perAttempt {
		if j, ok := jobs[k.job]; !ok || k.attempt > j.Attempt {
			t.Errorf("training jobs %v belong to job %s attempt %d, which the server does not know", names, k.job, k.attempt)
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "chaos SageMaker round (%s, local AWS endpoint), seed %d:\n", storeKind, s)
	b.WriteString(figureLine("jobs acknowledged", len(e.ids)))
	b.WriteString(figureLine("finished", len(e.ids)-len(lost)-len(notFinished)))
	b.WriteString(figureLine("lost (not final)", len(lost)))
	b.WriteString(figureLine("ended otherwise", len(notFinished)))
	b.WriteString(figureLine("attempts", attempts))
	b.WriteString(figureLine("training jobs per attempt", histogramString(histogram)))
	b.WriteString(figureLine("duplicates (2+ per attempt)", len(duplicates)))
	b.WriteString(figureLine("log lines shipped twice", len(logDups)))
	b.WriteString(figureLine("agent kills (SIGKILL)", fmt.Sprintf("%d: %s", cl.agentKills, phaseCounts(kills))))
	b.WriteString(figureLine("server kills", cl.serverKills))
	b.WriteString(figureLine("stale updates refused", staleRefused))
	b.WriteString(figureLine("leases expired, by state", sortedCounts(expiredFrom(jobs))))
	fmt.Print(b.String())
	t.Log(b.String())
	writeFigures(t, b.String())

	if len(lost) > 0 {
		t.Errorf("%d acknowledged jobs never reached a final state: %v", len(lost), lost)
	}
	if len(notFinished) > 0 {
		t.Errorf("jobs that did not finish, though a SageMaker job outlives its agent: %v", notFinished)
	}
	if len(duplicates) > 0 {
		t.Errorf("attempts with more than one training job: %v", duplicates)
	}
	if len(logDups) > 0 {
		t.Errorf("log lines shipped more than once: %v", logDups)
	}
	if cl.agentKills == 0 {
		t.Errorf("no agent was killed: the round tested nothing")
	}
	if staleRefused == 0 {
		t.Errorf("no stale holder got to try its old token: the fencing went unchecked")
	}
}

// holderAt waits up to a few seconds for a job of the SageMaker queue held
// at one of phases, the first in their order that it sees, and returns the
// name of its agent process and the phase. "claim" is a job claimed but
// not yet submitting (a fresh claim, or a re-attach before the first
// DescribeTrainingJob); "submit" is submitting; "running" is starting or
// running; "report" is a job still running here whose training job has
// ended on the endpoint.
func (cl *cluster) holderAt(ctx context.Context, sm *awssm.Client, phases []string, stop <-chan struct{}) (name, phase string, ok bool) {
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-stop:
			return "", "", false
		default:
		}
		callCtx, cancel := context.WithTimeout(ctx, callTimeout)
		js, err := cl.c.Jobs(callCtx, smQueue, "", 0)
		cancel()
		if err == nil {
			for _, phase := range phases {
				for _, j := range js {
					if j.Lease == nil || strings.HasPrefix(j.Lease.Agent, "stale-") || !atPhase(ctx, sm, j, phase) {
						continue
					}
					if name, ok := cl.agentName(ctx, j.Lease.Agent); ok {
						return name, phase, true
					}
				}
			}
		}
		time.Sleep(30 * time.Millisecond)
	}
	return "", "", false
}

// atPhase reports whether j is at phase (see holderAt).
func atPhase(ctx context.Context, sm *awssm.Client, j job.Job, phase string) bool {
	switch phase {
	case "claim":
		return j.State == job.Claimed
	case "submit":
		return j.State == job.Submitting
	case "running":
		return j.State == job.Starting || j.State == job.Running
	case "report":
		if j.State != job.Running || j.ExternalID == "" {
			return false
		}
		out, err := sm.DescribeTrainingJob(ctx, &awssm.DescribeTrainingJobInput{TrainingJobName: aws.String(j.ExternalID)})
		return err == nil && out.TrainingJobStatus != "InProgress" && out.TrainingJobStatus != "Stopping"
	}
	return j.State.Held()
}

// agentName returns the --name of the agent whose id holds leases, from
// the server's list of registered agents.
func (cl *cluster) agentName(ctx context.Context, id string) (string, bool) {
	callCtx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	as, err := cl.c.Agents(callCtx)
	if err != nil {
		return "", false
	}
	for _, a := range as {
		if a.ID == id {
			return a.Name, true
		}
	}
	return "", false
}

// killAgentNamed SIGKILLs the agent process started with --name name,
// if it is still alive, and starts another in its place.
func (cl *cluster) killAgentNamed(name string, maxJobs int) bool {
	n, ok := strings.CutPrefix(name, "chaos-")
	if !ok {
		return false
	}
	cl.mu.Lock()
	i := slices.IndexFunc(cl.agents, func(p *proc) bool { return p.name == "agent-"+n })
	if i < 0 {
		cl.mu.Unlock()
		return false
	}
	victim := cl.agents[i]
	cl.agents = slices.Delete(cl.agents, i, i+1)
	cl.agentKills++
	cl.mu.Unlock()
	victim.kill()
	cl.startAgent(maxJobs)
	return true
}

type attemptKey struct {
	job     string
	attempt int
}

// trainingJobsByAttempt lists every training job on the endpoint and
// groups their names by the job and attempt their environment names (the
// local endpoint serves no ListTags; the runner sets the same job id and
// attempt in Environment as in the slipway:* tags). A name that is not
// <job>-a<attempt> of its own environment is grouped under it all the same,
// so that a second training job for one attempt shows.
func trainingJobsByAttempt(ctx context.Context, sm *awssm.Client) (map[attemptKey][]string, error) {
	out := map[attemptKey][]string{}
	p := awssm.NewListTrainingJobsPaginator(sm, &awssm.ListTrainingJobsInput{MaxResults: aws.Int32(100)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing training jobs: %w", err)
		}
		for _, s := range page.TrainingJobSummaries {
			name := aws.ToString(s.TrainingJobName)
			d, err := sm.DescribeTrainingJob(ctx, &awssm.DescribeTrainingJobInput{TrainingJobName: s.TrainingJobName})
			if err != nil {
				return nil, fmt.Errorf("describing training job %s: %w", name, err)
			}
			a, err := strconv.Atoi(d.Environment[runner.EnvAttempt])
			if err != nil {
				return nil, fmt.Errorf("training job %s: %s %q: %w", name, runner.EnvAttempt, d.Environment[runner.EnvAttempt], err)
			}
			k := attemptKey{d.Environment[runner.EnvJobID], a}
			out[k] = append(out[k], name)
		}
	}
	return out, nil
}

// duplicateLines says which of the training script's own lines of j's
// last attempt were shipped other than once, or returns "".
func duplicateLines(t *testing.T, cl *cluster, j job.Job) string {
	l, err := retry(t.Context(), func(ctx context.Context) (api.Logs, error) { return cl.c.Logs(ctx, j.ID, j.Attempt, 0, 0) })
	if err != nil {
		t.Errorf("reading logs of %s: %v", j.ID, err)
		return ""
	}
	want := []string{fmt.Sprintf("start %s %d", j.ID, j.Attempt), "done " + j.ID}
	var bad []string
	for _, w := range want {
		n := 0
		for _, line := range l.Lines {
			if line.Stream != "slipway" && strings.TrimSpace(line.Text) == w {
				n++
			}
		}
		if n != 1 {
			bad = append(bad, fmt.Sprintf("%q %d times", w, n))
		}
	}
	if len(bad) == 0 {
		return ""
	}
	return j.ID + ": " + strings.Join(bad, ", ")
}

func histogramString(h map[int]int) string {
	var parts []string
	for _, n := range slices.Sorted(maps.Keys(h)) {
		parts = append(parts, fmt.Sprintf("%d job(s): %d attempt(s)", n, h[n]))
	}
	return strings.Join(parts, "; ")
}

func phaseCounts(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

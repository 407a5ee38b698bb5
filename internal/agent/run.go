package agent

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/slipway-ml/slipway/internal/admission"
	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/build"
	"github.com/slipway-ml/slipway/internal/client"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/runner"
	"github.com/slipway-ml/slipway/internal/source"
)

// errLeaseLost ends a job's context when another holder took its lease.
var errLeaseLost = errors.New("lease lost")

// errStartRefused ends a job's context when the server refused the move
// that records its run's start (for another reason than a lost lease): its
// Wait, begun before the answer came, ends, and the run is left as it was
// before Wait began early.
var errStartRefused = errors.New("the move to starting was refused")

// held is one job under this agent's lease.
type held struct {
	api *client.Client
	// refill claims a job for the slot the job's final move frees, in the
	// same request.
	refill client.Refill
	// lose ends the job's context with a cause: the start's move refused.
	lose context.CancelCauseFunc
	// ahead is the move to starting, sent without waiting for its answer
	// so that Wait begins at once; every later move follows it. Set
	// before Wait begins, nil when the job was not started here.
	ahead *ahead
	// agentLog is the agent's logger; log adds the job's attributes at
	// each line. A job logs seldom while it waits, and a logger made with
	// With would hold them pre-formatted for the job's whole life: about
	// half a KB for each of the thousands of jobs an agent may follow.
	agentLog *slog.Logger
	id       string
	queue    string
	attempt  int
	token    int64
	// secrets are the job's secret values, replaced in every line, reason
	// and output before it leaves the agent (the server redacts too).
	secrets []string

	// shipCtx is what the log shipper's context derives from: the job's,
	// without its cancel, since the shipper outlives it. A line starts a
	// shipper when none runs, so that a job that prints nothing costs no
	// goroutine; it is kept here because append has no context of its own
	// to start one with.
	shipCtx context.Context

	shipping   sync.Mutex // held while logs are sent
	mu         sync.Mutex
	state      job.State
	cancelling bool   // a user asked to cancel the job
	stopRun    func() // stops the run once it has an external id; nil before
	shipper    bool   // a shipLogs goroutine runs
	// stopShipper cancels the running shipper's context; nil when none
	// runs. Each shipper has a context of its own, made when it starts: a
	// context the job kept for its whole life would keep the bookkeeping
	// of every request made under it (a children map, a channel).
	stopShipper context.CancelFunc
	shipStopped bool // the job let go: no shipper starts any more
	lines       []job.LogLine
	// flushed is closed after the next shipped batch; made by a flush
	// that waits for one, nil while none does.
	flushed chan struct{}
}

// runJob drives one claimed job and reports whether it reached its end
// under this agent's lease; when it did not, the job is left to be
// re-attached.
//
// The goroutine that runs it spends a run's whole life blocked in the
// runner's Wait, one per followed job: the functions on its stack at that
// point (runJob, drive, follow) keep small frames, and the work with big
// ones (launch, settle) happens in calls that have returned by then, so
// that the runtime can shrink an idle job's stack to a few KB.
//
// ctx is the job's own: cancel ends it, with errLeaseLost as the cause
// when another holder took the lease.
func (a *Agent) runJob(ctx context.Context, cancel context.CancelCauseFunc, c *api.Claimed, rf *refill) (ended bool) {
	h := a.hold(c)
	h.refill, h.lose = rf, cancel
	// The shipper outlives ctx: a request cut off midway might have landed,
	// and sending its lines again would print them twice.
	h.shipCtx = context.WithoutCancel(ctx)
	defer h.stopShipping()
	defer a.renew.add(h, cancel, c.Job.Lease.ExpiresAt)()
	return h.settle(ctx, a.drive(ctx, h, c))
}

// hold is the state of a job the agent has just claimed.
func (a *Agent) hold(c *api.Claimed) *held {
	j := &c.Job
	return &held{api: a.api, agentLog: a.log, id: j.ID, queue: j.Queue, attempt: j.Attempt,
		token: j.Lease.Token, state: j.State,
		secrets: slices.Collect(maps.Values(c.Secrets))}
}

// log returns the agent's logger with the job's attributes.
func (h *held) log() *slog.Logger {
	return h.agentLog.With("job", h.id, "queue", h.queue, "attempt", h.attempt)
}

// settle logs why drive returned err and says whether the job reached its
// end; when the agent is stopping, it ships the lines the run printed so
// far, for the job's next holder to read on from.
func (h *held) settle(ctx context.Context, err error) (ended bool) {
	switch {
	case err == nil:
		return true
	case errors.Is(context.Cause(ctx), errLeaseLost):
		h.log().Warn("lease lost: another agent holds the job now; letting go")
	case errors.Is(context.Cause(ctx), errStartRefused):
		h.log().Error("reporting job", "err", err)
	case ctx.Err() != nil:
		h.log().Info("agent stopping: leaving the job to be re-attached", "state", h.current())
		flushCtx, cancelFlush := context.WithTimeout(h.shipCtx, 5*time.Second)
		// The run's id on its way lands before the job is handed over, so
		// that the next holder re-attaches to the run, not starts another.
		if a := h.ahead; a != nil {
			select {
			case <-a.done:
			case <-flushCtx.Done():
			}
		}
		h.shipPending(flushCtx)
		cancelFlush()
	default:
		h.log().Error("reporting job", "err", err)
	}
	return false
}

// drive takes the job from claimed to its end.
func (a *Agent) drive(ctx context.Context, h *held, c *api.Claimed) error {
	run, err := a.launch(ctx, h, c)
	if run == nil {
		return err
	}
	return a.follow(ctx, h, run)
}

// launched is a run the agent follows: started now, or by an earlier
// holder of the job's lease.
type launched struct {
	r   runner.Runner
	t   runner.Task
	ext string // the runner's external id
	// reattached is set when an earlier holder started the run.
	reattached bool
}

// launch builds the job's image when it needs one and starts its run,
// reporting each step; when the job has already run, it returns the run to
// re-attach to. A nil run means the job ended before it ran (err says
// whether that was reported).
func (a *Agent) launch(ctx context.Context, h *held, c *api.Claimed) (*launched, error) {
	// The claim is this job's own: the task points into it, and a built
	// image is set on it.
	j := &c.Job
	r, err := a.cfg.Runner(c.Queue)
	if err != nil {
		return nil, h.finish(ctx, runner.Result{State: job.Failed, Reason: fmt.Sprintf("no runner for %s queue %q: %v", c.Queue.Resource, c.Queue.Name, err)})
	}
	run := &launched{r: r, t: runner.Task{Job: j, Name: runner.TaskName(*j), Secrets: c.Secrets}, ext: j.ExternalID, reattached: j.ExternalID != ""}
	t := &run.t
	built := needsBuild(c.Queue, j)
	code := a.codeOf(h, j)
	if code != nil && !built {
		t.Code = func(ctx context.Context) (io.ReadCloser, error) {
			b, err := code(ctx)
			if err != nil {
				return nil, err
			}
			return io.NopCloser(bytes.NewReader(b)), nil
		}
	}
	if run.reattached {
		return run, nil
	}
	if j.CancelRequested {
		return nil, h.finish(ctx, runner.Result{State: job.Canceled, Reason: "canceled by user before it started"})
	}
	submit := api.Transition{To: job.Submitting, Reason: fmt.Sprintf("submitting to %s as %s", c.Queue.Resource, t.Name)}
	if built && j.Image == "" {
		res, err := a.buildImage(ctx, h, c.Queue, j, code)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, h.finish(ctx, runner.Result{State: job.Failed, Reason: "building the image: " + err.Error()})
		}
		t.Job.Image, submit.Image = res.Image, res.Image
		if res.Skipped {
			submit.Reason = fmt.Sprintf("image %s already built from this code: build skipped; %s", res.Image, submit.Reason)
		} else {
			submit.Reason = fmt.Sprintf("built %s with the %s builder; %s", res.Image, res.Builder, submit.Reason)
		}
	}
	// The enqueue could not judge an image built since: judge it now.
	if err := (admission.Checker{}).CheckPolicy(c.Queue, *t.Job); err != nil {
		return nil, h.finish(ctx, runner.Result{State: job.Failed, Reason: "checking the queue's policy before submitting: " + err.Error()})
	}
	if err := h.move(ctx, submit); err != nil {
		return nil, err
	}
	run.ext, err = r.Start(ctx, *t)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, h.finish(ctx, runner.Result{State: job.Failed, Reason: "starting: " + err.Error()})
	}
	// The start is recorded on its way while the run is followed: its
	// move goes before every later one (see moveAhead).
	h.moveAhead(ctx, api.Transition{To: job.Starting, Reason: "started as " + run.ext, ExternalID: run.ext})
	return run, nil
}

// follow waits for the run to end, stopping it once if a user cancels the
// job, and reports how it ended.
func (a *Agent) follow(ctx context.Context, h *held, run *launched) error {
	sk := &sink{ctx: ctx, h: h}
	if run.reattached {
		if err := a.reattach(ctx, h, run, sk); err != nil {
			return err
		}
	}
	// Stop the run once when a user cancels it: now if they already have.
	h.onCancel(func() {
		if ctx.Err() != nil {
			return
		}
		h.note("cancel requested: stopping " + run.ext)
		if err := run.r.Stop(context.WithoutCancel(ctx), run.ext); err != nil {
			h.log().Error("stopping run", "external_id", run.ext, "err", err)
		}
	})
	// The task, and through it the claim, goes to Wait alone: a runner
	// that needs it while the run lasts keeps it, and one that does not
	// (SageMaker) lets the claim go for as long as the run lasts.
	t := run.t
	run.t = runner.Task{}
	res, err := run.r.Wait(ctx, t, run.ext, sk)
	if err != nil {
		if err := h.aheadRefused(); err != nil {
			return err
		}
	}
	return h.ended(ctx, run, res, err)
}

// reattach makes sk skip the lines the job's last holder already shipped:
// a re-attached runner replays the run's output from its start.
func (a *Agent) reattach(ctx context.Context, h *held, run *launched, sk *sink) error {
	var err error
	if sk.skip, err = a.shipped(ctx, run.t.Job); err != nil {
		return err
	}
	h.note(fmt.Sprintf("re-attaching to %s after a lost lease", run.ext))
	return nil
}

// ended reports how the run ended, as Wait returned it.
func (h *held) ended(ctx context.Context, run *launched, res runner.Result, err error) error {
	switch {
	case errors.Is(err, runner.ErrLost):
		return h.finish(ctx, runner.Result{State: job.Failed, Reason: fmt.Sprintf("lost track of %s: %v", run.ext, err)})
	case err != nil:
		return err
	}
	if res.State == job.Stopped && h.cancelWanted() {
		res.Reason = "canceled by user: " + res.Reason
	}
	return h.finish(ctx, res)
}

// needsBuild reports whether a job's code must become an image before it
// runs: always on SageMaker, and on a local container when no image was
// given (with one, the code is mounted into it instead).
func needsBuild(q job.Queue, j *job.Job) bool {
	if !j.Spec.HasCode() {
		return false
	}
	return q.Resource == job.SageMaker || q.Resource == job.LocalContainer && j.Spec.Image == ""
}

// codeOf returns how to get the job's code as a gzipped tarball: from the
// server when it was sent with the job, from its git repository when it
// names one; nil when the job has none.
func (a *Agent) codeOf(h *held, j *job.Job) func(ctx context.Context) ([]byte, error) {
	switch {
	case j.Spec.Git != nil:
		g := *j.Spec.Git
		return func(ctx context.Context) ([]byte, error) {
			b, commit, err := source.FetchGit(ctx, g, api.MaxCodeSize)
			if err != nil {
				return nil, fmt.Errorf("fetching the job's code: %w", err)
			}
			h.note(fmt.Sprintf("fetched %s at %s: commit %s", g.URL, cmp.Or(g.Ref, "HEAD"), commit))
			return b, nil
		}
	case j.Spec.CodeDigest != "":
		return func(ctx context.Context) ([]byte, error) {
			b, err := a.api.Code(ctx, j.ID)
			if err != nil {
				return nil, fmt.Errorf("fetching the job's code: %w", err)
			}
			return b, nil
		}
	}
	return nil
}

// buildImage moves the job to building and builds its code into an image,
// its output going to the job's log.
func (a *Agent) buildImage(ctx context.Context, h *held, q job.Queue, j *job.Job, code func(context.Context) ([]byte, error)) (build.Result, error) {
	if a.cfg.Build == nil {
		return build.Result{}, fmt.Errorf("%w: this agent has no builder, and the job's code needs one; launch with --image", job.ErrInvalid)
	}
	what := j.Spec.CodeDigest
	if g := j.Spec.Git; g != nil {
		what = g.URL + " " + cmp.Or(g.Ref, "HEAD")
	}
	if err := h.move(ctx, api.Transition{To: job.Building, Reason: "building an image from the job's code " + what}); err != nil {
		return build.Result{}, err
	}
	b, err := code(ctx)
	if err != nil {
		return build.Result{}, err
	}
	return a.cfg.Build(ctx, q, *j, b, func(line string) { h.append("build", line) })
}

// cancelRequested notes that a user asked to cancel the job, and stops
// its run, once, if it has started.
func (h *held) cancelRequested() {
	h.mu.Lock()
	first := !h.cancelling
	h.cancelling = true
	stop := h.stopRun
	h.mu.Unlock()
	if first && stop != nil {
		go stop()
	}
}

// onCancel sets how to stop the run, and stops it at once when a user
// has already asked to cancel the job.
func (h *held) onCancel(stop func()) {
	h.mu.Lock()
	h.stopRun = stop
	asked := h.cancelling
	h.mu.Unlock()
	if asked {
		go stop()
	}
}

// prepared is t as the job sends it: under its token, redacted of its
// secrets.
func (h *held) prepared(t api.Transition) api.Transition {
	t.Token = h.token
	t.Reason = job.Redact(t.Reason, h.secrets)
	if len(h.secrets) > 0 && t.Outputs != nil {
		outs := make(map[string]string, len(t.Outputs))
		for k, v := range t.Outputs {
			outs[k] = job.Redact(v, h.secrets)
		}
		t.Outputs = outs
	}
	return t
}

// ahead is a move sent without waiting for its answer.
type ahead struct {
	// first is its first sending, for the moves after it to follow
	// until it is answered; nil (under held.mu) from then on, so that a
	// followed job does not keep the request's bookkeeping for its life.
	first *client.Pending
	done  chan struct{} // closed once err is set
	err   error         // nil once it landed; why not, after retries
}

// moveAhead sends t, the job's move to starting, and returns at once; a
// goroutine waits for its answer, retrying while the server is
// unreachable. The moves after it go after it (see move). When it is
// refused, the job's context ends (errLeaseLost for a lost lease,
// errStartRefused otherwise): the run's Wait, begun meanwhile, returns,
// and the job lets go as it did when the refusal came before Wait.
func (h *held) moveAhead(ctx context.Context, t api.Transition) {
	t = h.prepared(t)
	// Its first sending is not cut off when the job's context ends (the
	// agent stopping): a hand-over must not overtake it (see settle).
	a := &ahead{first: h.api.Send(context.WithoutCancel(ctx), h.id, t, nil, nil), done: make(chan struct{})}
	h.ahead = a
	// The job is in t.To for every later move, which follows this one: a
	// run that reports it meanwhile (sink.State) must not move it again.
	// A refusal ends the job.
	h.mu.Lock()
	h.state = t.To
	h.mu.Unlock()
	go func() {
		err := h.settleMove(ctx, t, a.first)
		h.mu.Lock()
		a.err, a.first = err, nil
		h.mu.Unlock()
		close(a.done)
		if a.err == nil || ctx.Err() != nil {
			return
		}
		if errors.Is(a.err, job.ErrLeaseLost) || errors.Is(a.err, job.ErrNotFound) {
			h.lose(errLeaseLost)
		} else {
			h.lose(errStartRefused)
		}
	}()
}

// aheadRefused returns why the move sent ahead failed, once it has; nil
// while it is on its way, or when it landed.
func (h *held) aheadRefused() error {
	if a := h.ahead; a != nil {
		select {
		case <-a.done:
			return a.err
		default:
		}
	}
	return nil
}

// move reports a transition, retrying while the server is unreachable.
// After a move sent ahead, it is sent behind it: in its request or a later
// one (client.Send's after); when that first sending failed, it waits for
// the move ahead to land, after its retries, and is sent again.
func (h *held) move(ctx context.Context, t api.Transition) error {
	t = h.prepared(t)
	a := h.ahead
	var after *client.Pending
	if a != nil {
		// first is nil once the move ahead is answered: a landed one
		// needs no following, a refused one ends the job.
		h.mu.Lock()
		first, err := a.first, a.err
		h.mu.Unlock()
		if first == nil && err != nil {
			return err
		}
		after = first
	}
	p := h.api.Send(ctx, h.id, t, after, h.refill)
	if after == nil {
		return h.settleMove(ctx, t, p)
	}
	st, err := p.Wait()
	if err == nil {
		h.moved(t, st)
		return nil
	}
	select {
	case <-a.done:
	case <-ctx.Done():
		return fmt.Errorf("moving job %s to %s: %w", h.id, t.To, err)
	}
	switch {
	case a.err != nil:
		return a.err
	case client.IsUnreachable(err) || errors.Is(err, client.ErrEarlierMoveFailed):
		// Sent again now that the move ahead has landed.
		return h.settleMove(ctx, t, h.api.Send(ctx, h.id, t, nil, h.refill))
	}
	return fmt.Errorf("moving job %s to %s: %w", h.id, t.To, err)
}

// settleMove waits for p, the move t sent, and sends t again while the
// server is unreachable.
func (h *held) settleMove(ctx context.Context, t api.Transition, p *client.Pending) error {
	for failures := 1; ; failures++ {
		st, err := p.Wait()
		if err == nil {
			h.moved(t, st)
			return nil
		}
		if !client.IsUnreachable(err) || ctx.Err() != nil {
			return fmt.Errorf("moving job %s to %s: %w", h.id, t.To, err)
		}
		sleep(ctx, backoff(failures))
		// The agent's other jobs' moves made meanwhile share its request.
		p = h.api.Send(ctx, h.id, t, nil, h.refill)
	}
}

// moved notes that t landed, leaving the job in st.
func (h *held) moved(t api.Transition, st job.State) {
	h.mu.Lock()
	h.state = st
	h.mu.Unlock()
	// Every move of every job logs this line: as attributes, not through
	// log's With, so that it costs no allocation and no pre-formatted
	// logger; and only when something logs it, since the record's frame
	// alone would grow a waiting job's small stack.
	if ctx := context.Background(); h.agentLog.Enabled(ctx, slog.LevelInfo) {
		h.agentLog.LogAttrs(ctx, slog.LevelInfo, "job moved",
			slog.String("job", h.id), slog.String("queue", h.queue), slog.Int("attempt", h.attempt),
			slog.String("state", string(t.To)), slog.String("reason", t.Reason))
	}
}

// finish ships the remaining logs, then reports the final state: a
// follower that sees the end has every line.
func (h *held) finish(ctx context.Context, res runner.Result) error {
	h.flush(ctx)
	return h.move(ctx, api.Transition{To: res.State, Reason: res.Reason, Outputs: res.Outputs})
}

func (h *held) current() job.State {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state
}

func (h *held) cancelWanted() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cancelling
}

// sink passes a run's progress and output to the held job.
type sink struct {
	ctx context.Context
	h   *held

	mu   sync.Mutex
	skip map[string]int // lines already shipped, by replayKey: not to ship again
}

func (s *sink) State(st job.State, reason string) {
	if st == s.h.current() {
		return
	}
	if err := s.h.move(s.ctx, api.Transition{To: st, Reason: reason}); err != nil && s.ctx.Err() == nil {
		s.h.log().Error("reporting job state", "state", st, "err", err)
	}
}

func (s *sink) Log(stream, line string) {
	s.mu.Lock()
	k := replayKey(stream, line)
	replayed := s.skip[k] > 0
	if replayed {
		s.skip[k]--
	}
	s.mu.Unlock()
	if !replayed {
		s.h.append(stream, line)
	}
}

// replayKey groups log lines whose relative order a replay keeps: one
// stream of one host. Lines are counted per key, not matched by position,
// since streams interleave differently on each replay.
func replayKey(stream, line string) string {
	if strings.HasPrefix(line, "[algo-") {
		if host, _, ok := strings.Cut(line, "]"); ok {
			return stream + " " + host
		}
	}
	return stream
}

// shipped counts, by replayKey, the lines of j's attempt already stored.
func (a *Agent) shipped(ctx context.Context, j *job.Job) (map[string]int, error) {
	counts := map[string]int{}
	var after int64
	for {
		l, err := a.api.Logs(ctx, j.ID, j.Attempt, after, 0)
		if err != nil {
			return nil, fmt.Errorf("reading the logs already shipped for job %s: %w", j.ID, err)
		}
		if len(l.Lines) == 0 {
			return counts, nil
		}
		for _, line := range l.Lines {
			counts[replayKey(line.Stream, line.Text)]++
		}
		after = l.Next
	}
}

// note adds one of the agent's own lines to the job's log.
func (h *held) note(text string) { h.append("slipway", text) }

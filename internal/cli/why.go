package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/client"
	"github.com/slipway-ml/slipway/internal/job"
)

// agentFresh is how recently an agent must have claimed to count as
// serving its queues: an agent's claim waits at most 30s on the server.
const agentFresh = 2 * time.Minute

// whyFacts is everything `job why` looks at, read from the API.
type whyFacts struct {
	Job    job.Job
	Queue  *job.Queue    // nil when the queue is gone
	Queued []job.Job     // the queue's queued jobs
	Held   []job.Job     // every job an agent holds, in any queue
	Agents []job.Agent   // every registered agent
	Logs   []job.LogLine // the current attempt's logs
	Now    time.Time
}

// whyAnswer is what `job why` prints: the job's state and the reasons for it.
type whyAnswer struct {
	ID      string    `json:"id"`
	State   job.State `json:"state"`
	Reasons []string  `json:"reasons"`
}

func (a *app) jobWhyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "why ID",
		Short: "Explain why a job is not running yet, or why it ended",
		Long: `Explain a job's state from what the server knows: for a queued job its place in
the queue, whether the queue is ready, whether any agent serves the queue and has
a free slot; for a held job which agent holds its lease and until when, and
SageMaker's latest status; for an ended job how it ended and why.`,
		Example: `  slipway job why j-0123456789abcdef
  slipway job why j-0123456789abcdef -o json`,
		Args: exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			f, err := readWhyFacts(cmd.Context(), c, args[0])
			if err != nil {
				return friendly(err)
			}
			ans := whyAnswer{ID: f.Job.ID, State: f.Job.State, Reasons: explain(f)}
			if a.json() {
				return a.printJSON(ans)
			}
			fmt.Fprintf(a.stdout, "job %s is %s\n", ans.ID, ans.State)
			for _, r := range ans.Reasons {
				fmt.Fprintf(a.stdout, "  - %s\n", strings.ReplaceAll(r, "\n", "\n    "))
			}
			return nil
		},
	}
}

func readWhyFacts(ctx context.Context, c *client.Client, id string) (whyFacts, error) {
	f := whyFacts{Now: time.Now()}
	var err error
	if f.Job, err = c.Job(ctx, id); err != nil {
		return f, err
	}
	if q, err := c.Queue(ctx, f.Job.Queue); err == nil {
		f.Queue = &q
	} else if !isNotFound(err) {
		return f, err
	}
	if f.Job.State == job.Queued {
		if f.Queued, err = c.Jobs(ctx, f.Job.Queue, job.Queued, 100000); err != nil {
			return f, err
		}
		for _, st := range []job.State{job.Claimed, job.Building, job.Submitting, job.Starting, job.Running} {
			js, err := c.Jobs(ctx, "", st, 100000)
			if err != nil {
				return f, err
			}
			f.Held = append(f.Held, js...)
		}
	}
	if f.Agents, err = c.Agents(ctx); err != nil {
		return f, err
	}
	var after int64
	for {
		l, err := c.Logs(ctx, id, f.Job.Attempt, after, 0)
		if err != nil {
			return f, err
		}
		if len(l.Lines) == 0 {
			break
		}
		f.Logs = append(f.Logs, l.Lines...)
		after = l.Next
	}
	return f, nil
}

// explain turns what the server knows about a job into sentences.
func explain(f whyFacts) []string {
	j := f.Job
	var out []string
	switch {
	case j.State == job.Queued:
		out = explainQueued(f)
	case j.State.Held():
		out = explainHeld(f)
	default:
		out = explainEnded(f)
	}
	if note := lastSageMakerNote(f.Logs); note != "" {
		out = append(out, "SageMaker's latest status: "+note)
	}
	if j.State == job.Failed || j.State == job.Stopped || j.State == job.Preempted {
		if tail := lastOutput(f.Logs, 5); len(tail) > 0 {
			out = append(out, "its last output:\n"+strings.Join(tail, "\n"))
		}
	}
	return out
}

func explainQueued(f whyFacts) []string {
	j := f.Job
	var out []string
	if f.Queue == nil {
		return []string{fmt.Sprintf("its queue %s no longer exists", j.Queue)}
	}
	if len(f.Queue.Missing) > 0 {
		out = append(out, fmt.Sprintf("queue %s is not ready: fill %s in its config (slipway queue update %s --config FILE)",
			j.Queue, strings.Join(f.Queue.Missing, " and "), j.Queue))
	}
	ahead := jobsAhead(j, f.Queued)
	switch len(ahead) {
	case 0:
		out = append(out, fmt.Sprintf("it is first in queue %s", j.Queue))
	default:
		ids := make([]string, 0, 3)
		for _, a := range ahead[:min(3, len(ahead))] {
			ids = append(ids, fmt.Sprintf("%s (%s)", a.ID, a.Priority))
		}
		more := ""
		if len(ahead) > 3 {
			more = fmt.Sprintf(" and %d more", len(ahead)-3)
		}
		out = append(out, fmt.Sprintf("it is number %d in queue %s: %d job(s) ahead of it by priority then age: %s%s",
			len(ahead)+1, j.Queue, len(ahead), strings.Join(ids, ", "), more))
	}

	var serving, stale []job.Agent
	for _, a := range f.Agents {
		if !servesQueue(a, j.Queue) {
			continue
		}
		if f.Now.Sub(a.LastSeen) < agentFresh {
			serving = append(serving, a)
		} else {
			stale = append(stale, a)
		}
	}
	switch {
	case len(serving) == 0 && len(stale) == 0:
		out = append(out, fmt.Sprintf("no agent serves queue %s: start one with `slipway agent -q %s` (or `slipway up`)", j.Queue, j.Queue))
	case len(serving) == 0:
		names := make([]string, 0, len(stale))
		for _, a := range stale {
			names = append(names, fmt.Sprintf("%s (last seen %s ago)", agentName(a), roundAge(f.Now.Sub(a.LastSeen))))
		}
		out = append(out, fmt.Sprintf("no agent serving queue %s has been seen in the last %s: %s", j.Queue, agentFresh, strings.Join(names, ", ")))
	default:
		held := map[string]int{}
		for _, h := range f.Held {
			if h.Lease != nil {
				held[h.Lease.Agent]++
			}
		}
		var full []string
		for _, a := range serving {
			if a.MaxJobs >= 0 && held[a.ID] >= max(a.MaxJobs, 1) {
				full = append(full, fmt.Sprintf("%s runs %d of max_jobs %d", agentName(a), held[a.ID], max(a.MaxJobs, 1)))
			}
		}
		if len(full) == len(serving) {
			out = append(out, "every agent serving the queue is at its concurrency limit: "+strings.Join(full, "; "))
		} else {
			names := make([]string, 0, len(serving))
			for _, a := range serving {
				names = append(names, agentName(a))
			}
			out = append(out, fmt.Sprintf("served by %s, with a free slot: it should be claimed shortly", strings.Join(names, ", ")))
		}
	}
	if j.ExternalID != "" {
		out = append(out, fmt.Sprintf("it went back to its queue after its agent's lease expired (%s); the next agent re-attaches to %s rather than start it again", j.Reason, j.ExternalID))
	} else if j.Attempt > 1 {
		out = append(out, fmt.Sprintf("this is attempt %d: %s", j.Attempt, j.Reason))
	}
	return out
}

// jobsAhead returns the queued jobs claimed before j: higher priority
// first, then older, as the store claims them.
func jobsAhead(j job.Job, queued []job.Job) []job.Job {
	var ahead []job.Job
	for _, o := range queued {
		if o.ID != j.ID && claimOrder(o, j) < 0 {
			ahead = append(ahead, o)
		}
	}
	slices.SortFunc(ahead, claimOrder)
	return ahead
}

func claimOrder(a, b job.Job) int {
	if c := cmp.Compare(b.Priority, a.Priority); c != 0 {
		return c
	}
	if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

func explainHeld(f whyFacts) []string {
	j := f.Job
	var out []string
	if l := j.Lease; l != nil {
		holder := l.Agent
		for _, a := range f.Agents {
			if a.ID == l.Agent {
				holder = agentName(a)
			}
		}
		if f.Now.Before(l.ExpiresAt) {
			out = append(out, fmt.Sprintf("agent %s holds its lease until %s (it renews it while it works)", holder, l.ExpiresAt.Local().Format(time.TimeOnly)))
		} else {
			out = append(out, fmt.Sprintf("agent %s's lease expired at %s: the server will return the job to its queue, and the next agent re-attaches to its run", holder, l.ExpiresAt.Local().Format(time.TimeOnly)))
		}
	}
	switch j.State {
	case job.Claimed:
		out = append(out, "the agent has claimed it and is preparing to run it")
	case job.Building:
		out = append(out, "the agent is building its image: "+j.Reason)
	case job.Submitting:
		out = append(out, "the agent is submitting it: "+j.Reason)
	case job.Starting:
		out = append(out, "its run is starting (for SageMaker: waiting for capacity, launching instances or downloading the image): "+j.Reason)
	case job.Running:
		out = append(out, "it is running: "+j.Reason)
	}
	if j.CancelRequested {
		out = append(out, "a cancel was requested: its agent is stopping it")
	}
	return out
}

func explainEnded(f whyFacts) []string {
	j := f.Job
	var last job.Event
	for _, e := range j.Events {
		if e.To == j.State {
			last = e
		}
	}
	when := ""
	if !last.At.IsZero() {
		when = fmt.Sprintf(" at %s by %s", last.At.Local().Format(time.DateTime), last.Actor)
	}
	reason := cmp.Or(j.Reason, "no reason given")
	switch j.State {
	case job.Finished:
		return []string{fmt.Sprintf("it finished%s: %s", when, reason)}
	case job.Failed:
		return []string{fmt.Sprintf("it failed%s: %s", when, reason)}
	case job.Stopped:
		return []string{fmt.Sprintf("it was stopped%s: %s", when, reason)}
	case job.Canceled:
		return []string{fmt.Sprintf("it was canceled%s: %s", when, reason)}
	case job.Preempted:
		return []string{fmt.Sprintf("it was preempted%s (a spot interruption) and used up its retries: %s", when, reason)}
	}
	return []string{fmt.Sprintf("it is %s: %s", j.State, reason)}
}

// lastSageMakerNote is the last "SageMaker: ..." note the agent logged.
func lastSageMakerNote(lines []job.LogLine) string {
	for i := len(lines) - 1; i >= 0; i-- {
		if lines[i].Stream == "slipway" {
			if note, ok := strings.CutPrefix(lines[i].Text, "SageMaker: "); ok {
				return note
			}
		}
	}
	return ""
}

// lastOutput is the job's own last n lines of output.
func lastOutput(lines []job.LogLine, n int) []string {
	var out []string
	for i := len(lines) - 1; i >= 0 && len(out) < n; i-- {
		if lines[i].Stream != "slipway" {
			out = append(out, lines[i].Text)
		}
	}
	slices.Reverse(out)
	return out
}

func servesQueue(a job.Agent, queue string) bool {
	return slices.Contains(a.Queues, queue) || slices.Contains(a.Queues, api.AllQueues)
}

func agentName(a job.Agent) string {
	if a.Name == "" || a.Name == a.ID {
		return a.ID
	}
	return a.Name + " (" + a.ID + ")"
}

func roundAge(d time.Duration) time.Duration {
	if d > time.Minute {
		return d.Round(time.Minute)
	}
	return d.Round(time.Second)
}

func isNotFound(err error) bool { return errors.Is(err, job.ErrNotFound) }

package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/slipway-ml/slipway/internal/admission"
	"github.com/slipway-ml/slipway/internal/durfmt"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
)

// maxCount bounds the held jobs read to list what each agent holds.
const maxCount = 100000

// heldStates are the states of a job an agent holds.
var heldStates = []job.State{job.Claimed, job.Building, job.Submitting, job.Starting, job.Running}

// queueRow is one queue as the overview shows it.
type queueRow struct {
	job.Queue
	Depth   int      // queued jobs
	Running int      // jobs held by an agent
	Agents  []string // names of the fresh agents serving it
	Config  string   // indented config
}

// agentRow is one agent with the jobs it holds.
type agentRow struct {
	job.Agent
	Fresh bool
	Held  []job.Job
}

func (h *Handler) overview(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	queues, err := h.queueRows(ctx)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	agents, err := h.agentRows(ctx)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	recent, err := h.cfg.Store.ListJobs(ctx, store.JobFilter{Limit: 20})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, r, "overview", map[string]any{
		"Title": "Overview", "Queues": queues, "Agents": agents, "Jobs": recent, "Live": anyActive(recent),
	})
}

func (h *Handler) queue(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q, err := h.cfg.Store.GetQueue(ctx, r.PathValue("name"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	agents, err := h.agentRows(ctx)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	counts, err := h.cfg.Store.CountUnfinished(ctx)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	row := h.queueRow(q, agents, counts)
	jobs, err := h.cfg.Store.ListJobs(ctx, store.JobFilter{Queue: q.Name, Limit: 50})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, r, "queue", map[string]any{"Title": "Queue " + q.Name, "Q": row, "Jobs": jobs, "Live": anyActive(jobs)})
}

func (h *Handler) jobs(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	f := store.JobFilter{Queue: r.URL.Query().Get("queue"), Limit: 200}
	if s := r.URL.Query().Get("state"); s != "" {
		st, err := job.ParseState(s)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		f.State = st
	}
	jobs, err := h.cfg.Store.ListJobs(ctx, f)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	queues, err := h.cfg.Store.ListQueues(ctx)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, r, "jobs", map[string]any{
		"Title": "Jobs", "Jobs": jobs, "Queue": f.Queue, "State": string(f.State),
		"Queues": queues, "States": job.States, "Live": anyActive(jobs),
	})
}

func (h *Handler) agents(w http.ResponseWriter, r *http.Request) {
	agents, err := h.agentRows(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, r, "agents", map[string]any{"Title": "Agents", "Agents": agents})
}

// attempt is one attempt of a job and the events that belong to it.
type attempt struct {
	N      int
	Events []job.Event
	Last   job.State
}

func (h *Handler) job(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	j, err := h.cfg.Store.GetJob(ctx, r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	lines, err := h.cfg.Store.ReadLogs(ctx, j.ID, 0, 0, h.cfg.LogLines)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var after int64
	if len(lines) > 0 {
		after = lines[len(lines)-1].Seq
	}
	data := map[string]any{
		"Title": "Job " + j.ID, "J": j, "Attempts": attempts(j.Events), "Logs": lines, "After": after,
		"Truncated": len(lines) == h.cfg.LogLines, "Outputs": slices.Sorted(maps.Keys(j.Outputs)),
	}
	if q, err := h.cfg.Store.GetQueue(ctx, j.Queue); err == nil {
		data["Q"] = q
		if q.Resource == job.SageMaker {
			data["Request"], data["RequestErr"] = trainingRequest(q, j)
		}
	}
	if j.ExternalID != "" || j.Outputs["training_job_arn"] != "" {
		data["Console"] = ConsoleURL(j.Outputs["training_job_arn"], j.ExternalID)
	}
	h.render(w, r, "job", data)
}

// attempts groups a job's events by attempt, first attempt first.
func attempts(events []job.Event) []attempt {
	var out []attempt
	for _, e := range events {
		if len(out) == 0 || out[len(out)-1].N != e.Attempt {
			out = append(out, attempt{N: e.Attempt})
		}
		a := &out[len(out)-1]
		a.Events = append(a.Events, e)
		a.Last = e.To
	}
	return out
}

func (h *Handler) queueRows(ctx context.Context) ([]queueRow, error) {
	qs, err := h.cfg.Store.ListQueues(ctx)
	if err != nil {
		return nil, err
	}
	agents, err := h.agentRows(ctx)
	if err != nil {
		return nil, err
	}
	counts, err := h.cfg.Store.CountUnfinished(ctx)
	if err != nil {
		return nil, fmt.Errorf("counting jobs: %w", err)
	}
	rows := make([]queueRow, 0, len(qs))
	for _, q := range qs {
		rows = append(rows, h.queueRow(q, agents, counts))
	}
	return rows, nil
}

func (h *Handler) queueRow(q job.Queue, agents []agentRow, counts map[string]map[job.State]int) queueRow {
	q.Missing = admission.Checker{}.Missing(q)
	depth := counts[q.Name][job.Queued]
	row := queueRow{Queue: q, Depth: depth, Running: max(q.Unfinished-depth, 0), Config: indent(q.Config)}
	for _, a := range agents {
		if a.Fresh && Serves(a.Agent, q.Name) {
			row.Agents = append(row.Agents, a.Name)
		}
	}
	return row
}

// Serves reports whether agent a takes jobs from the named queue: it lists
// it, or "*" for every queue.
func Serves(a job.Agent, queue string) bool {
	return slices.Contains(a.Queues, queue) || slices.Contains(a.Queues, "*")
}

func (h *Handler) agentRows(ctx context.Context) ([]agentRow, error) {
	as, err := h.cfg.Store.ListAgents(ctx)
	if err != nil {
		return nil, err
	}
	held := map[string][]job.Job{}
	for _, st := range heldStates {
		js, err := h.cfg.Store.ListJobs(ctx, store.JobFilter{State: st, Limit: maxCount})
		if err != nil {
			return nil, fmt.Errorf("listing %s jobs: %w", st, err)
		}
		for _, j := range js {
			if j.Lease != nil {
				held[j.Lease.Agent] = append(held[j.Lease.Agent], j)
			}
		}
	}
	now := h.cfg.Now()
	rows := make([]agentRow, 0, len(as))
	for _, a := range as {
		rows = append(rows, agentRow{Agent: a, Fresh: now.Sub(a.LastSeen) < h.cfg.AgentFresh, Held: held[a.ID]})
	}
	slices.SortFunc(rows, func(a, b agentRow) int {
		if c := b.LastSeen.Compare(a.LastSeen); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return rows, nil
}

// ConsoleURL links to a training job in the SageMaker console. The region
// comes from the training job's ARN
// (arn:aws:sagemaker:REGION:ACCOUNT:training-job/NAME), and so does the
// name when the ARN has one; it returns "" when no region is known.
func ConsoleURL(arn, name string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "sagemaker" || !validRegion(parts[3]) {
		return ""
	}
	region := parts[3]
	if n, ok := strings.CutPrefix(parts[5], "training-job/"); ok && n != "" {
		name = n
	}
	if name == "" {
		return ""
	}
	return "https://" + region + ".console.aws.amazon.com/sagemaker/home?region=" + region + "#/jobs/" + name
}

// validRegion accepts what can stand in a host name: lowercase letters,
// digits and dashes, like us-east-2.
func validRegion(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

func anyActive(js []job.Job) bool {
	return slices.ContainsFunc(js, func(j job.Job) bool { return !j.State.Terminal() })
}

func indent(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

func funcs(now func() time.Time) map[string]any {
	return map[string]any{
		"ago": func(t time.Time) string {
			if t.IsZero() {
				return "never"
			}
			return durfmt.Short(now().Sub(t)) + " ago"
		},
		"until": func(t time.Time) string { return "in " + durfmt.Short(t.Sub(now())) },
		"ts":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
		"tsms":  func(t time.Time) string { return t.UTC().Format("15:04:05.000") },
		"terminal": func(s job.State) bool {
			return s.Terminal()
		},
		"join": strings.Join,
	}
}

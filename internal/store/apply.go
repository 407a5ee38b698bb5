package store

import (
	"fmt"
	"maps"
	"time"

	"github.com/slipway-ml/slipway/internal/job"
)

// Apply returns the held job j as the update u leaves it at time now, and
// the actor its event names: the lifecycle checked (job.ErrConflict for a
// move it does not allow), the non-empty fields set, outputs merged, and
// the lease released on a move to a terminal state or back to queued. Every
// store calls it inside its transaction, after checking u's token, so that
// all agree on what a transition does.
func Apply(j job.Job, u Update, now time.Time) (out job.Job, actor string, err error) {
	if !job.CanTransition(j.State, u.To) {
		return job.Job{}, "", fmt.Errorf("%w: %s → %s", job.ErrConflict, j.State, u.To)
	}
	actor = u.Actor
	if actor == "" && j.Lease != nil {
		actor = j.Lease.Agent
	}
	out = j
	out.State, out.Reason, out.UpdatedAt = u.To, u.Reason, now
	if u.ExternalID != "" {
		out.ExternalID = u.ExternalID
	}
	if u.Image != "" {
		out.Image = u.Image
	}
	if len(u.Outputs) > 0 {
		out.Outputs = maps.Clone(j.Outputs)
		if out.Outputs == nil {
			out.Outputs = map[string]string{}
		}
		maps.Copy(out.Outputs, u.Outputs)
	}
	if u.To.Terminal() || u.To == job.Queued {
		out.Lease = nil
	}
	return out, actor, nil
}

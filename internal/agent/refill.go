package agent

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/client"
)

// refill is a Run's slots and the jobs that hold them: it starts the jobs
// claimed (start), and claims new ones in the requests that carry the
// agent's jobs' final moves, one for each slot they free (client.Refill): while its
// queues have work, a busy agent's slots go from each job that ends to the
// next without a claim request of its own, and Run's claim loop, which
// waits for a free slot, long-polls only when a refill found nothing.
//
// A claimed job takes the slot of a job whose final move its request
// carried: that job, still held until its move is answered, is marked
// (holdings.pass) so that it does not free the slot as it lets go. A job
// that let go first (its move's caller gave up) freed its slot already:
// the new job then takes a free slot if there is one, and is handed back
// to its queue if not.
type refill struct {
	a     *Agent
	ctx   context.Context // Run's: once it ends, no claim goes out
	slots chan struct{}   // one value per slot taken; nil: no max_jobs
	held  *holdings
	wg    *sync.WaitGroup
	turn  atomic.Int64
}

// release frees one slot.
func (f *refill) release() {
	if f.slots != nil {
		<-f.slots
	}
}

var _ client.Refill = (*refill)(nil)

// Claim implements client.Refill: a claim of the agent's queues, in the
// next turn of their rotation, for as many jobs as the request's final
// moves free slots.
func (f *refill) Claim(freed int) (api.Claim, bool) {
	if f.ctx.Err() != nil || freed <= 0 {
		return api.Claim{}, false
	}
	turn := int(f.turn.Add(1) - 1)
	return api.Claim{Agent: f.a.id, Queues: rotate(f.a.cfg.Queues, turn), Max: min(freed, api.MaxClaim)}, true
}

// Claimed implements client.Refill: each job claimed starts in the slot of
// one of the jobs whose final moves went with the claim.
func (f *refill) Claimed(cs []api.Claimed, freed []api.LeaseRef, err error) {
	if err != nil {
		if f.ctx.Err() == nil {
			f.a.log.Warn("claiming jobs with a batch of moves", "err", err)
		}
		return
	}
	for i, c := range cs {
		if i >= len(freed) || !f.held.pass(freed[i]) && !f.takeFree() {
			// More than asked, or no slot for it: back to its queue.
			go f.a.handOver(refOf(&c.Job), fmt.Sprintf("agent %s had no free slot for it: handed back", f.a.id))
			continue
		}
		if !f.start(c) {
			// The agent shuts down: the slot goes, and the job back.
			f.release()
			go f.a.shuttingDown(refOf(&c.Job))
		}
	}
}

// takeFree takes a free slot if one is; with no max_jobs there always is.
func (f *refill) takeFree() bool {
	if f.slots == nil {
		return true
	}
	select {
	case f.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

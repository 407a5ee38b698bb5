package agent

import (
	"context"
	"time"

	"github.com/slipway-ml/slipway/internal/client"
	"github.com/slipway-ml/slipway/internal/job"
)

// maxBatch caps the lines shipped in one request.
const maxBatch = 500

// append queues one log line for shipping, and starts a shipper when
// none runs.
func (h *held) append(stream, text string) {
	text = job.Redact(text, h.secrets)
	h.mu.Lock()
	h.lines = append(h.lines, job.LogLine{At: time.Now().UTC(), Stream: stream, Text: text})
	ctx, start := h.startShipper()
	h.mu.Unlock()
	if start {
		go h.shipLogs(ctx)
	}
}

// startShipper reports whether the caller must start a shipper, and
// returns its context: lines are queued and none runs. h.mu must be held.
func (h *held) startShipper() (context.Context, bool) {
	if h.shipper || len(h.lines) == 0 || h.shipStopped {
		return nil, false
	}
	ctx, cancel := context.WithCancel(h.shipCtx)
	h.shipper, h.stopShipper = true, cancel
	return ctx, true
}

// stopShipping cancels the running shipper, if any, and lets no other
// start: the job let go.
func (h *held) stopShipping() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.shipStopped = true
	if h.stopShipper != nil {
		h.stopShipper()
	}
}

// shipLogs sends queued lines to the server as they come, and ends once
// none is left: whatever piled up while one request was in flight goes in
// the next, so there is no timer, and a quiet job holds no goroutine.
func (h *held) shipLogs(ctx context.Context) {
	for {
		h.shipPending(ctx)
		h.mu.Lock()
		if len(h.lines) == 0 || ctx.Err() != nil {
			h.stopShipper() // releases ctx
			h.shipper, h.stopShipper = false, nil
			h.mu.Unlock()
			return
		}
		h.mu.Unlock()
	}
}

// shipPending sends every queued line, in batches, then wakes flushers.
func (h *held) shipPending(ctx context.Context) {
	h.shipping.Lock() // one sender at a time, or a batch could go twice
	defer h.shipping.Unlock()
	for {
		h.mu.Lock()
		n := min(len(h.lines), maxBatch)
		batch := h.lines[:n:n]
		h.mu.Unlock()
		if n == 0 {
			break
		}
		if err := h.api.AppendLogs(ctx, h.id, h.token, batch); err != nil {
			if ctx.Err() != nil {
				return
			}
			if client.IsUnreachable(err) {
				h.log().Warn("shipping logs; retrying", "lines", n, "err", err)
				sleep(ctx, backoff(1))
				continue
			}
			h.log().Error("shipping logs; dropping them", "lines", n, "err", err)
		}
		h.mu.Lock()
		h.lines = h.lines[n:]
		if len(h.lines) == 0 {
			// Even empty, the slice would keep the shipped lines' array
			// and texts for as long as the job runs quiet.
			h.lines = nil
		}
		h.mu.Unlock()
	}
	h.mu.Lock()
	if h.flushed != nil {
		close(h.flushed)
		h.flushed = nil
	}
	h.mu.Unlock()
}

// flush waits until every line queued so far has been shipped.
func (h *held) flush(ctx context.Context) {
	for {
		h.mu.Lock()
		pending := len(h.lines)
		if pending > 0 && h.flushed == nil {
			h.flushed = make(chan struct{})
		}
		done := h.flushed
		shipCtx, start := h.startShipper()
		h.mu.Unlock()
		if pending == 0 {
			return
		}
		if start {
			go h.shipLogs(shipCtx)
		}
		select {
		case <-done:
		case <-ctx.Done():
			return
		}
	}
}

package agent

import (
	"context"
	"time"

	"github.com/slipway-ml/slipway/internal/client"
	"github.com/slipway-ml/slipway/internal/job"
)

// maxBatch caps the lines shipped in one request.
const maxBatch = 500

// append queues one log line for shipping.
func (h *held) append(stream, text string) {
	h.mu.Lock()
	h.lines = append(h.lines, job.LogLine{At: time.Now().UTC(), Stream: stream, Text: text})
	h.mu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// shipLogs sends queued lines to the server as they come: whatever piled up
// while one request was in flight goes in the next, so there is no timer.
func (h *held) shipLogs(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.wake:
		}
		h.shipPending(ctx)
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
				h.log.Warn("shipping logs; retrying", "lines", n, "err", err)
				sleep(ctx, backoff(1))
				continue
			}
			h.log.Error("shipping logs; dropping them", "lines", n, "err", err)
		}
		h.mu.Lock()
		h.lines = h.lines[n:]
		h.mu.Unlock()
	}
	h.mu.Lock()
	close(h.flushed)
	h.flushed = make(chan struct{})
	h.mu.Unlock()
}

// flush waits until every line queued so far has been shipped.
func (h *held) flush(ctx context.Context) {
	for {
		h.mu.Lock()
		pending, done := len(h.lines), h.flushed
		h.mu.Unlock()
		if pending == 0 {
			return
		}
		select {
		case h.wake <- struct{}{}:
		default:
		}
		select {
		case <-done:
		case <-ctx.Done():
			return
		}
	}
}

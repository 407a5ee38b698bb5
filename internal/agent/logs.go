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
	start := h.startShipper()
	h.mu.Unlock()
	if start {
		go h.shipLogs()
	}
}

// startShipper reports whether the caller must start a shipper: lines are
// queued and none runs. h.mu must be held.
func (h *held) startShipper() bool {
	if h.shipper || len(h.lines) == 0 || h.shipCtx.Err() != nil {
		return false
	}
	h.shipper = true
	return true
}

// shipLogs sends queued lines to the server as they come, and ends once
// none is left: whatever piled up while one request was in flight goes in
// the next, so there is no timer, and a quiet job holds no goroutine.
func (h *held) shipLogs() {
	for {
		h.shipPending(h.shipCtx)
		h.mu.Lock()
		if len(h.lines) == 0 || h.shipCtx.Err() != nil {
			h.shipper = false
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
		start := h.startShipper()
		h.mu.Unlock()
		if pending == 0 {
			return
		}
		if start {
			go h.shipLogs()
		}
		select {
		case <-done:
		case <-ctx.Done():
			return
		}
	}
}

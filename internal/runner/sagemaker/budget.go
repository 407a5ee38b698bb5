package sagemaker

import (
	"sync"
	"time"
)

// budget is a token bucket that bounds the rate of one CloudWatch Logs
// operation for every job a runner follows. Calls spend from it as they
// are made (a paged read, or polls that started together, may run it into
// debt, which later polls wait out); a job's log poll starts only while it
// holds a whole token, and is put off otherwise, so that a
// thousand jobs whose logs come due together make the calls one after
// the other at the budget's rate instead of being throttled by the
// account's quota, and no poller worker blocks waiting for it.
type budget struct {
	rate float64 // tokens a second; <= 0: no limit

	mu     sync.Mutex
	tokens float64
	at     time.Time // when tokens was last refilled
}

func newBudget(rate float64) *budget {
	return &budget{rate: rate, tokens: max(rate, 1), at: time.Now()}
}

// refill adds the tokens earned since the last refill, up to one
// second's worth. Called with mu held.
func (b *budget) refill(now time.Time) {
	if now.After(b.at) {
		b.tokens = min(max(b.rate, 1), b.tokens+now.Sub(b.at).Seconds()*b.rate)
		b.at = now
	}
}

// spend takes one token for a call being made.
func (b *budget) spend() {
	if b == nil || b.rate <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(time.Now())
	b.tokens--
}

// wait returns how long until the budget holds a whole token: 0 when it
// does now.
func (b *budget) wait(now time.Time) time.Duration {
	if b == nil || b.rate <= 0 {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	if b.tokens >= 1 {
		return 0
	}
	return time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
}

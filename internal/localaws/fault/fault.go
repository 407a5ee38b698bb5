// Package fault holds the faults that the local AWS endpoint injects on
// request, off by default: throttling, capacity errors, slow starts. They can
// be changed while the endpoint runs (its admin endpoint does), so the
// current set is read through an Injector.
package fault

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// Faults is the set of faults to inject. The zero value injects none.
type Faults struct {
	// ThrottleRate is the share (0..1) of JSON API calls answered with a
	// ThrottlingException. Default 0.
	ThrottleRate float64 `json:"ThrottleRate"`
	// CapacityErrorRate is the share (0..1) of CreateTrainingJob calls
	// answered with a ResourceLimitExceeded capacity error. Default 0.
	CapacityErrorRate float64 `json:"CapacityErrorRate"`
	// StartDelay holds each training job in Starting this long before its
	// containers are created (a slow instance launch). Default 0.
	StartDelay time.Duration `json:"StartDelay"`
}

// Validate reports rates outside 0..1 and negative delays.
func (f Faults) Validate() error {
	if f.ThrottleRate < 0 || f.ThrottleRate > 1 {
		return fmt.Errorf("ThrottleRate %v: must be within 0..1", f.ThrottleRate)
	}
	if f.CapacityErrorRate < 0 || f.CapacityErrorRate > 1 {
		return fmt.Errorf("CapacityErrorRate %v: must be within 0..1", f.CapacityErrorRate)
	}
	if f.StartDelay < 0 {
		return fmt.Errorf("StartDelay %v: must not be negative", f.StartDelay)
	}
	return nil
}

// Injector hands out the current faults; safe for concurrent use. The zero
// value injects none.
type Injector struct {
	mu sync.Mutex
	f  Faults
}

// New returns an Injector that starts with f.
func New(f Faults) *Injector { return &Injector{f: f} }

// Set replaces the current faults.
func (in *Injector) Set(f Faults) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.f = f
}

// Get returns the current faults.
func (in *Injector) Get() Faults {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.f
}

// Throttle reports whether this call should be throttled.
func (in *Injector) Throttle() bool { return roll(in.Get().ThrottleRate) }

// Capacity reports whether this create should fail for lack of capacity.
func (in *Injector) Capacity() bool { return roll(in.Get().CapacityErrorRate) }

// StartDelay returns how long a job waits in Starting.
func (in *Injector) StartDelay() time.Duration { return in.Get().StartDelay }

func roll(rate float64) bool {
	switch {
	case rate <= 0:
		return false
	case rate >= 1:
		return true
	}
	return rand.Float64() < rate
}

package fault

import (
	"testing"
	"time"
)

func TestInjector(t *testing.T) {
	t.Parallel()
	in := New(Faults{})
	if in.Throttle() || in.Capacity() || in.StartDelay() != 0 {
		t.Fatalf("zero faults: got some injected, want none")
	}
	in.Set(Faults{ThrottleRate: 1, CapacityErrorRate: 1, StartDelay: time.Second})
	if !in.Throttle() || !in.Capacity() || in.StartDelay() != time.Second {
		t.Errorf("full faults: got throttle %v capacity %v delay %v, want all on", in.Throttle(), in.Capacity(), in.StartDelay())
	}
	for _, f := range []Faults{{ThrottleRate: -0.1}, {CapacityErrorRate: 1.5}, {StartDelay: -time.Second}} {
		if f.Validate() == nil {
			t.Errorf("Validate(%+v): got nil, want an error", f)
		}
	}
}

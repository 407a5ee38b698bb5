package bench

import (
	"os"
	"strings"
	"testing"
)

// TestMain lets the footprint start this test binary again as its agent
// process (see RunAgentIfAsked).
func TestMain(m *testing.M) {
	RunAgentIfAsked()
	os.Exit(m.Run())
}

func TestParseSamples(t *testing.T) {
	t.Parallel()
	page := `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 27
go_memstats_heap_inuse_bytes 4.194304e+06
slipway_aws_api_calls_total{op="DescribeTrainingJob"} 12
`
	got, err := parseSamples(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	if got["go_goroutines"] != 27 || got["go_memstats_heap_inuse_bytes"] != 4194304 {
		t.Errorf("got %v, want go_goroutines 27 and go_memstats_heap_inuse_bytes 4194304", got)
	}
	if len(got) != 2 {
		t.Errorf("got %d samples, want 2 (labelled samples skipped)", len(got))
	}
}

func TestTailBufferKeepsTheEnd(t *testing.T) {
	t.Parallel()
	b := &tailBuffer{max: 5}
	b.Write([]byte("abc"))
	b.Write([]byte("defg"))
	if got := b.String(); got != "cdefg" {
		t.Errorf("got %q, want %q", got, "cdefg")
	}
}

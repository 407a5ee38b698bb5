package job_test

import (
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/job"
)

// TestSortedIDsSortByTime checks that ids made a millisecond or more
// apart sort in the order they were made, and that ids are distinct and
// fit a TrainingJobName.
func TestSortedIDsSortByTime(t *testing.T) {
	t.Parallel()
	var ids []string
	seen := map[string]bool{}
	for range 5 {
		for range 100 {
			id := job.NewSortedID("j-")
			if seen[id] {
				t.Fatalf("id %s made twice", id)
			}
			seen[id] = true
			ids = append(ids, id)
		}
		time.Sleep(2 * time.Millisecond)
	}
	name := regexp.MustCompile(`^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$`)
	for _, id := range ids {
		if !name.MatchString(id + "-a10") {
			t.Fatalf("id %s: %s-a10 is not a valid TrainingJobName", id, id)
		}
	}
	// Within one millisecond the order is random; across them, by time.
	for i := 100; i < len(ids); i += 100 {
		if prev := slices.Max(ids[i-100 : i]); ids[i] < prev {
			t.Fatalf("id %s made after %s sorts before it", ids[i], prev)
		}
	}
}

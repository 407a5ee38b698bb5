package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/job"
)

func TestQueueMaxRunningFlag(t *testing.T) {
	url := setup(t)
	if code, _, stderr := run(t, url, "queue", "create", "cpu", "--resource", "local-process", "--max-running", "2"); code != 0 {
		t.Fatalf("queue create --max-running 2: exit %d: %s", code, stderr)
	}
	if code, stdout, _ := run(t, url, "queue", "describe", "cpu"); code != 0 || !strings.Contains(stdout, "max running: 2") {
		t.Fatalf("queue describe: exit %d, %q; want max running: 2", code, stdout)
	}
	code, stdout, stderr := run(t, url, "queue", "update", "cpu", "--max-running", "5", "-o", "json")
	var q job.Queue
	if code != 0 || json.Unmarshal([]byte(stdout), &q) != nil || q.MaxRunning != 5 {
		t.Fatalf("queue update --max-running 5: exit %d, %q %s; want max_running 5", code, stdout, stderr)
	}
	if code, _, stderr := run(t, url, "queue", "update", "cpu"); code == 0 || !strings.Contains(stderr, "--max-running") {
		t.Fatalf("queue update with nothing to change: exit %d, %q; want an error naming --config and --max-running", code, stderr)
	}
	if code, _, stderr := run(t, url, "queue", "update", "cpu", "--max-running", "-1"); code == 0 || !strings.Contains(stderr, "-1") {
		t.Fatalf("queue update --max-running -1: exit %d, %q; want an error", code, stderr)
	}
}

func TestLaunchIdempotencyKey(t *testing.T) {
	url := setup(t)
	if code, _, stderr := run(t, url, "queue", "create", "cpu", "--resource", "local-process"); code != 0 {
		t.Fatalf("queue create: exit %d: %s", code, stderr)
	}
	launch := func() (string, string) {
		t.Helper()
		code, stdout, stderr := run(t, url, "launch", "-q", "cpu", "--entrypoint", "true", "--idempotency-key", "nightly-1")
		if code != 0 {
			t.Fatalf("launch --idempotency-key: exit %d: %s", code, stderr)
		}
		return strings.TrimSpace(stdout), stderr
	}
	first, _ := launch()
	second, note := launch()
	if first == "" || second != first {
		t.Fatalf("two launches with one key: got jobs %q and %q, want the same job", first, second)
	}
	if !strings.Contains(note, "no new job") {
		t.Fatalf("second launch: stderr %q, want it to say no new job was made", note)
	}
	_, stdout, _ := run(t, url, "job", "list", "-o", "json")
	var js []job.Job
	if err := json.Unmarshal([]byte(stdout), &js); err != nil || len(js) != 1 {
		t.Fatalf("job list: got %q (%v), want one job", stdout, err)
	}
}

package storetest

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
)

// testInvalidInput checks that each method refuses malformed input with
// job.ErrInvalid and changes nothing.
func testInvalidInput(t *testing.T, s *suite) {
	c := ctx(t)
	s.queue(t, "q")
	_, err := s.CreateQueue(c, job.Queue{Name: "r", Resource: "mainframe"})
	wantErr(t, "creating a queue with an unknown resource", err, job.ErrInvalid)
	_, err = s.CreateQueue(c, job.Queue{Name: "r", Resource: job.LocalProcess, Config: json.RawMessage(`{"a":`)})
	wantErr(t, "creating a queue with a config that is not JSON", err, job.ErrInvalid)
	_, err = s.UpdateQueue(c, job.Queue{Name: "q", Resource: job.LocalProcess, Config: json.RawMessage(`not json`)})
	wantErr(t, "updating a queue with a config that is not JSON", err, job.ErrInvalid)
	if _, err := s.GetQueue(c, "r"); err == nil {
		t.Fatalf("getting queue r: got it, want none made by refused creates")
	}

	for _, p := range []job.Priority{job.Low - 1, job.Critical + 1} {
		_, err := s.Enqueue(c, job.Job{ID: job.NewID("j"), Queue: "q", Priority: p, Spec: spec(0)}, nil)
		wantErr(t, "enqueueing with "+p.String(), err, job.ErrInvalid)
	}
	if js, err := s.ListJobs(c, store.JobFilter{}); err != nil || len(js) != 0 {
		t.Fatalf("jobs after refused enqueues: got %d, %v; want none", len(js), err)
	}

	_, err = s.Claim(c, store.ClaimRequest{Queues: []string{"q"}, TTL: ttl})
	wantErr(t, "claiming without an agent", err, job.ErrInvalid)
	_, err = s.Claim(c, store.ClaimRequest{Agent: "agent-1", Queues: []string{"q"}})
	wantErr(t, "claiming without a ttl", err, job.ErrInvalid)

	queued := s.enqueue(t, "q", job.Medium)
	if got := s.get(t, queued.ID); got.State != job.Queued {
		t.Fatalf("after refused claims: got state %s, want queued", got.State)
	}
	j := s.claim(t, "agent-1", "q")
	_, err = s.Renew(c, j.ID, j.Lease.Token, store.Holder{}, 0)
	wantErr(t, "renewing for no time", err, job.ErrInvalid)
	_, err = s.Transition(c, store.Update{JobID: j.ID, Token: j.Lease.Token, To: "exploded", Reason: "why"})
	wantErr(t, "moving to an unknown state", err, job.ErrInvalid)
	if got := s.get(t, j.ID); got.State != job.Claimed || got.Lease == nil || !got.Lease.ExpiresAt.Equal(j.Lease.ExpiresAt) {
		t.Fatalf("after refused updates: got state %s, lease %+v; want claimed, %+v", got.State, got.Lease, j.Lease)
	}

	_, err = s.RegisterAgent(c, job.Agent{Name: "host"})
	wantErr(t, "registering an agent without an id", err, job.ErrInvalid)
}

// testEmptyReads checks that reads of nothing return nothing, not an error:
// a new store, a job without logs, no lease to expire.
func testEmptyReads(t *testing.T, s *suite) {
	c := ctx(t)
	if qs, err := s.ListQueues(c); err != nil || len(qs) != 0 {
		t.Fatalf("listing the queues of a new store: got %v, %v; want none", qs, err)
	}
	if js, err := s.ListJobs(c, store.JobFilter{}); err != nil || len(js) != 0 {
		t.Fatalf("listing the jobs of a new store: got %v, %v; want none", ids(js), err)
	}
	if ids, err := s.ExpireLeases(c, time.Now().Add(time.Hour)); err != nil || len(ids) != 0 {
		t.Fatalf("expiring the leases of a new store: got %v, %v; want none", ids, err)
	}
	s.queue(t, "q")
	j := s.enqueue(t, "q", job.Medium)
	if lines, err := s.ReadLogs(c, j.ID, 0, 0, 0); err != nil || len(lines) != 0 {
		t.Fatalf("reading the logs of a job that wrote none: got %v, %v; want none", lines, err)
	}
	if lines, err := s.ReadLogs(c, j.ID, 1, 0, 10); err != nil || len(lines) != 0 {
		t.Fatalf("reading the first attempt's logs of a job that wrote none: got %v, %v; want none", lines, err)
	}
}

// testOddText feeds the text that training jobs print, NUL bytes and bytes
// that are not UTF-8 among it, into logs and reasons: it is stored, and
// comes back as it was or with U+FFFD in place of each bad byte.
func testOddText(t *testing.T, s *suite) {
	c := ctx(t)
	s.queue(t, "q")
	s.enqueue(t, "q", job.Medium)
	j := s.claim(t, "agent-1", "q")
	texts := []string{"nul\x00byte", "bad \xff\xfe utf-8", "ünïcödé ✓ 训练", "", strings.Repeat("long line ", 10_000)}
	var lines []job.LogLine
	for _, x := range texts {
		lines = append(lines, job.LogLine{Stream: "stdout", Text: x})
	}
	if err := s.AppendLogs(c, j.ID, j.Lease.Token, store.Holder{}, lines); err != nil {
		t.Fatalf("appending odd lines: %v", err)
	}
	got, err := s.ReadLogs(c, j.ID, 0, 0, 0)
	if err != nil {
		t.Fatalf("reading: %v", err)
	}
	if len(got) != len(texts) {
		t.Fatalf("got %d lines, want %d", len(got), len(texts))
	}
	for i, l := range got {
		if !sameText(l.Text, texts[i]) {
			t.Fatalf("line %d: got %q, want %q or that with U+FFFD for bad bytes", i, l.Text, texts[i])
		}
	}
	reason := "exit 1: \xff\x00 segfault"
	done, err := s.Transition(c, store.Update{JobID: j.ID, Token: j.Lease.Token, To: job.Failed, Reason: reason, Actor: "agent-1"})
	if err != nil {
		t.Fatalf("failing with an odd reason: %v", err)
	}
	after := s.get(t, j.ID)
	last := after.Events[len(after.Events)-1]
	if !sameText(done.Reason, reason) || !sameText(after.Reason, reason) || !sameText(last.Reason, reason) {
		t.Fatalf("reasons: got %q returned, %q stored, %q in the event; want %q or that with U+FFFD for bad bytes",
			done.Reason, after.Reason, last.Reason, reason)
	}
}

// sameText reports whether got is want, or want with every byte that is not
// UTF-8, and NUL, replaced by U+FFFD.
func sameText(got, want string) bool {
	if got == want {
		return true
	}
	var b strings.Builder
	for i, r := range want {
		switch {
		case r == 0:
			b.WriteRune('\uFFFD')
		case r == '\uFFFD' && !strings.HasPrefix(want[i:], "\uFFFD"):
			b.WriteRune('\uFFFD') // one bad byte
		default:
			b.WriteRune(r)
		}
	}
	return got == b.String() || got == strings.ToValidUTF8(strings.ReplaceAll(want, "\x00", "\uFFFD"), "\uFFFD")
}

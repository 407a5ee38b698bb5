package job_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/slipway-ml/slipway/internal/job"
)

// FuzzSpec decodes arbitrary JSON as a job spec and validates it: Validate
// never panics, refuses only with ErrInvalid, and a spec it accepts keeps
// its promises (something to run, usable env names, JSON objects) and
// still passes after a round trip through JSON, as the store keeps it.
func FuzzSpec(f *testing.F) {
	for _, seed := range []string{
		`{"image": "x"}`,
		`{"entrypoint": ["sh", "-c", "echo hi"], "env": {"A": "1"}}`,
		`{"code_digest": "sha256:00", "run_config": {"lr": 0.1}}`,
		`{"image": "x", "env": {"": "1"}}`,
		`{"image": "x", "env": {"A=B": "1"}}`,
		`{"image": "x", "run_config": [1, 2]}`,
		`{"image": "x", "resource_args": null}`,
		`{"image": "x", "resource_args": {"ResourceConfig": {"InstanceCount": 2}}}`,
		`{}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var s job.Spec
		if json.Unmarshal(b, &s) != nil {
			return
		}
		err := s.Validate()
		if err != nil {
			if !errors.Is(err, job.ErrInvalid) {
				t.Fatalf("Validate(%s): got %v, want an ErrInvalid", b, err)
			}
			return
		}
		if s.Image == "" && s.CodeDigest == "" && len(s.Entrypoint) == 0 {
			t.Fatalf("Validate(%s) accepted a spec with nothing to run", b)
		}
		for k := range s.Env {
			if k == "" {
				t.Fatalf("Validate(%s) accepted an empty env name", b)
			}
		}
		for _, raw := range []json.RawMessage{s.RunConfig, s.ResourceArgs} {
			var obj map[string]any
			if len(raw) > 0 && (json.Unmarshal(raw, &obj) != nil || obj == nil) {
				t.Fatalf("Validate(%s) accepted %s, which is not a JSON object", b, raw)
			}
		}
		again, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("encoding an accepted spec: %v", err)
		}
		var back job.Spec
		if err := json.Unmarshal(again, &back); err != nil {
			t.Fatalf("decoding %s: %v", again, err)
		}
		if err := back.Validate(); err != nil {
			t.Fatalf("spec %s passed, but after a JSON round trip (%s) fails: %v", b, again, err)
		}
	})
}

func TestParsePriorityAndState(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"low", "medium", "HIGH", "critical"} {
		if _, err := job.ParsePriority(name); err != nil {
			t.Errorf("ParsePriority(%q): got %v, want nil", name, err)
		}
	}
	if _, err := job.ParsePriority("urgent"); !errors.Is(err, job.ErrInvalid) {
		t.Errorf("ParsePriority(urgent): got %v, want ErrInvalid", err)
	}
	if !job.CanTransition(job.Running, job.Queued) || job.CanTransition(job.Finished, job.Queued) {
		t.Errorf("a held job may be handed back to its queue, a finished one may not")
	}
}

package cli

import (
	"errors"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/job"
)

func TestParsePolicy(t *testing.T) {
	t.Parallel()
	p, err := parsePolicy([]byte(`{"role_arns": ["arn:aws:iam::1:role/r"], "max_instance_count": 2, "spot_required": true}`))
	if err != nil || p.MaxInstanceCount != 2 || !p.SpotRequired || len(p.RoleArns) != 1 {
		t.Fatalf("parsePolicy: got %+v, %v", p, err)
	}
	if _, err := parsePolicy([]byte(`{"role_arn": ["arn:aws:iam::1:role/r"]}`)); !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "role_arn") {
		t.Errorf("a misspelt rule: got %v, want a usage error naming it", err)
	}
	if _, err := parsePolicy([]byte(`{"max_instance_count": -1}`)); !errors.Is(err, errUsage) {
		t.Errorf("a negative cap: got %v, want a usage error", err)
	}
}

func FuzzParsePolicy(f *testing.F) {
	for _, s := range []string{`{}`, `{"images": ["r/"]}`, `{"max_runtime_seconds": 1}`, `[]`, `{"spot_required": "yes"}`, `{} {}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parsePolicy(b)
		if err != nil {
			if !errors.Is(err, errUsage) {
				t.Fatalf("parsePolicy(%q): got %v, want a usage error", b, err)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("parsePolicy(%q) accepted a policy that Validate refuses: %v", b, err)
		}
		var _ *job.Policy = p
	})
}

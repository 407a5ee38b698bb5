package job

import (
	"errors"
	"strings"
	"testing"
)

func TestPolicyCheck(t *testing.T) {
	t.Parallel()
	yes, no := true, false
	p := &Policy{
		RoleArns:          []string{"arn:aws:iam::123456789012:role/ok"},
		Images:            []string{"123456789012.dkr.ecr.us-east-1.amazonaws.com/team", "registry.example/"},
		InstanceTypes:     []string{"ml.m5.xlarge"},
		MaxInstanceCount:  2,
		MaxRuntimeSeconds: 3600,
		SpotRequired:      true,
		GitURLs:           []string{"https://git.example/acme", "git@git.example:"},
	}
	good := PolicyInput{RoleArn: "arn:aws:iam::123456789012:role/ok", Image: "123456789012.dkr.ecr.us-east-1.amazonaws.com/team:v1",
		InstanceType: "ml.m5.xlarge", InstanceCount: 2, MaxRuntimeSeconds: 3600, Spot: &yes, GitURL: "https://git.example/acme/train.git"}
	if err := p.Check(good); err != nil {
		t.Fatalf("a job inside the policy: got %v, want nil", err)
	}
	for rule, change := range map[string]func(*PolicyInput){
		"role_arns":           func(in *PolicyInput) { in.RoleArn = "arn:aws:iam::123456789012:role/admin" },
		"images":              func(in *PolicyInput) { in.Image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/team-evil:v1" },
		"instance_types":      func(in *PolicyInput) { in.InstanceType = "ml.p4d.24xlarge" },
		"max_instance_count":  func(in *PolicyInput) { in.InstanceCount = 3 },
		"max_runtime_seconds": func(in *PolicyInput) { in.MaxRuntimeSeconds = 3601 },
		"spot_required":       func(in *PolicyInput) { in.Spot = &no },
		"git_urls":            func(in *PolicyInput) { in.GitURL = "file:///home/agent/private" },
	} {
		in := good
		change(&in)
		err := p.Check(in)
		if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), rule) {
			t.Errorf("breaking %s: got %v, want ErrForbidden naming %s", rule, err, rule)
		}
	}
	for _, im := range []string{"registry.example/x/y:1", "123456789012.dkr.ecr.us-east-1.amazonaws.com/team@sha256:ab", "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/sub:1"} {
		in := good
		in.Image = im
		if err := p.Check(in); err != nil {
			t.Errorf("image %s: got %v, want allowed", im, err)
		}
	}
	for url, allowed := range map[string]bool{
		"https://git.example/acme": true, "https://git.example/acme.git": true, "git@git.example:other/x": true,
		"https://git.example/acme-evil/x": false, "https://git.example/acmex": false, "ssh://git.example/acme/x": false,
	} {
		in := good
		in.GitURL = url
		if err := p.Check(in); (err == nil) != allowed {
			t.Errorf("git URL %s: got %v, want allowed %v", url, err, allowed)
		}
	}
	var none *Policy
	if err := none.Check(PolicyInput{RoleArn: "x"}); err != nil || !none.IsZero() {
		t.Errorf("nil policy: got %v, want everything allowed", err)
	}
}

func TestPolicyValidate(t *testing.T) {
	t.Parallel()
	for _, p := range []Policy{
		{RoleArns: []string{"admin"}},
		{Images: []string{""}},
		{InstanceTypes: []string{"m5.xlarge"}},
		{MaxInstanceCount: -1},
		{GitURLs: []string{"https://x/ y"}},
	} {
		if err := p.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("Validate(%+v): got %v, want ErrInvalid", p, err)
		}
	}
}

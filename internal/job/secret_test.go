package job

import (
	"errors"
	"strings"
	"testing"
)

func TestParseSecretArg(t *testing.T) {
	t.Parallel()
	for arg, want := range map[string]struct {
		name, value string
		isValue     bool
	}{
		"DB_PASSWORD=hunter2!": {"DB_PASSWORD", "hunter2!", true},
		"K=a=b":                {"K", "a=b", true},
		"API=secretsmanager:arn:aws:secretsmanager:us-east-1:1:secret:x": {"API", "secretsmanager:arn:aws:secretsmanager:us-east-1:1:secret:x", false},
		"TOKEN=ssm:/team/token": {"TOKEN", "ssm:/team/token", false},
	} {
		n, v, isValue, err := ParseSecretArg(arg)
		if err != nil || n != want.name || v != want.value || isValue != want.isValue {
			t.Errorf("ParseSecretArg(%q) = %q, %q, %v, %v; want %+v", arg, n, v, isValue, err, want)
		}
	}
	for _, bad := range []string{"NOVALUE", "=x", "1X=y", "X=", "BAD-NAME=x", "X=ssm:relative", "X=secretsmanager:"} {
		if _, _, _, err := ParseSecretArg(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseSecretArg(%q): got %v, want ErrInvalid", bad, err)
		}
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	got := Redact("password is hunter2! and again hunter2!; short a", []string{"hunter2!", "a"})
	if strings.Contains(got, "hunter2!") || !strings.Contains(got, "[redacted]") || !strings.HasSuffix(got, "short a") {
		t.Errorf("Redact: got %q", got)
	}
}

func TestRedactMultiLineValues(t *testing.T) {
	t.Parallel()
	key := "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"
	for _, line := range []string{"MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "  -----BEGIN PRIVATE KEY-----"} {
		if got := Redact(line, []string{key}); strings.Contains(got, strings.TrimSpace(line)) {
			t.Errorf("a line of a multi-line secret: got %q, want it redacted", got)
		}
	}
	if got := Redact("whole: "+key, []string{key}); got != "whole: [redacted]" {
		t.Errorf("the whole value: got %q, want one [redacted]", got)
	}
	json := "{\n  \"user\": \"admin\",\n  \"pw\": \"s3cr3t-pw\"\n}"
	if got := Redact("{ and } stay", []string{json}); got != "{ and } stay" {
		t.Errorf("short lines of a multi-line secret: got %q, want them left alone", got)
	}
	if got := Redact(`"pw": "s3cr3t-pw"`, []string{json}); strings.Contains(got, "s3cr3t-pw") {
		t.Errorf("a JSON line of a multi-line secret: got %q, want it redacted", got)
	}
}

func FuzzParseSecretArg(f *testing.F) {
	for _, s := range []string{"A=b", "A=ssm:/x", "A=secretsmanager:y", "=", "A", "A=ssm:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		name, value, isValue, err := ParseSecretArg(arg)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ParseSecretArg(%q): got %v, want ErrInvalid", arg, err)
			}
			return
		}
		if err := ValidateSecretName(name); err != nil || value == "" {
			t.Fatalf("ParseSecretArg(%q) = %q, %q: accepted a bad name or an empty value", arg, name, value)
		}
		if !isValue {
			if err := (Secret{Name: name, Ref: value}).Validate(); err != nil {
				t.Fatalf("ParseSecretArg(%q) accepted a reference Validate refuses: %v", arg, err)
			}
		}
	})
}

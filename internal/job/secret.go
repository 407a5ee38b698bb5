package job

import (
	"fmt"
	"regexp"
	"strings"
)

// Secret is one secret a job needs, by reference: the value is never in
// the job. The runner materialises it inside the run (a file, or a
// reference the container resolves), never in a training job's plaintext
// Environment or HyperParameters.
type Secret struct {
	// Name is what the job knows the secret as: an environment-variable-like
	// name, also the file name under the secrets folder.
	Name string `json:"name"`
	// Ref says where the value is: "secretsmanager:<ARN or name>",
	// "ssm:/<parameter path>", or "sealed:<ciphertext>" for a value given at
	// launch, sealed by the server with its key.
	Ref string `json:"ref"`
}

// The kinds of secret reference.
const (
	SecretsManagerRef = "secretsmanager:"
	SSMRef            = "ssm:"
	SealedRef         = "sealed:"
)

var secretName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// ValidateSecretName checks a secret's name.
func ValidateSecretName(name string) error {
	if !secretName.MatchString(name) {
		return fmt.Errorf("%w: secret name %q: want letters, digits and '_', not starting with a digit", ErrInvalid, name)
	}
	return nil
}

// Validate checks a secret reference.
func (s Secret) Validate() error {
	if err := ValidateSecretName(s.Name); err != nil {
		return err
	}
	switch {
	case strings.HasPrefix(s.Ref, SecretsManagerRef):
		id := strings.TrimPrefix(s.Ref, SecretsManagerRef)
		if id == "" || len(id) > 2048 || strings.ContainsAny(id, " \t\r\n") {
			return fmt.Errorf("%w: secret %s: %q: want secretsmanager:<ARN or name>", ErrInvalid, s.Name, s.Ref)
		}
	case strings.HasPrefix(s.Ref, SSMRef):
		p := strings.TrimPrefix(s.Ref, SSMRef)
		if !strings.HasPrefix(p, "/") || len(p) > 2048 || strings.ContainsAny(p, " \t\r\n") {
			return fmt.Errorf("%w: secret %s: %q: want ssm:/<parameter path>", ErrInvalid, s.Name, s.Ref)
		}
	case strings.HasPrefix(s.Ref, SealedRef):
		if len(s.Ref) == len(SealedRef) {
			return fmt.Errorf("%w: secret %s: empty sealed value", ErrInvalid, s.Name)
		}
	default:
		return fmt.Errorf("%w: secret %s: %q: want secretsmanager:..., ssm:/... or a value given at launch", ErrInvalid, s.Name, s.Ref)
	}
	return nil
}

// ParseSecretArg reads launch's --secret NAME=VALUE: a reference when VALUE
// starts with secretsmanager: or ssm:, else a value to seal (isValue).
func ParseSecretArg(arg string) (name, value string, isValue bool, err error) {
	name, value, ok := strings.Cut(arg, "=")
	if !ok {
		return "", "", false, fmt.Errorf("%w: --secret %q: want NAME=VALUE, NAME=secretsmanager:ARN or NAME=ssm:/path", ErrInvalid, name)
	}
	if err := ValidateSecretName(name); err != nil {
		return "", "", false, err
	}
	if value == "" {
		return "", "", false, fmt.Errorf("%w: --secret %s: empty value", ErrInvalid, name)
	}
	if strings.HasPrefix(value, SecretsManagerRef) || strings.HasPrefix(value, SSMRef) {
		return name, value, false, Secret{Name: name, Ref: value}.Validate()
	}
	return name, value, true, nil
}

// Redact replaces every occurrence of each of values in s with [redacted].
// Values shorter than 4 bytes are left alone: hiding every "a" would
// garble the text and protect nothing. A value of several lines (a PEM
// key, pretty-printed JSON) is also redacted line by line, since output
// is read and shipped a line at a time: each of its lines that holds 8
// bytes or more once trimmed.
func Redact(s string, values []string) string {
	for _, v := range values {
		s = redactOne(s, v, 4)
		if !strings.ContainsAny(v, "\r\n") {
			continue
		}
		for line := range strings.Lines(v) {
			s = redactOne(s, strings.TrimSpace(line), 8)
		}
	}
	return s
}

func redactOne(s, v string, minLen int) string {
	if len(v) >= minLen && strings.Contains(s, v) {
		return strings.ReplaceAll(s, v, "[redacted]")
	}
	return s
}

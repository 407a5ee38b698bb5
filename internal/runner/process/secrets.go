package process

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/runner"
)

// SecretsDir is where a task's secrets folder goes under a work directory:
// beside its run directory rather than in it, so that the job's code can
// neither shadow it nor ship it.
func SecretsDir(workDir string, t runner.Task) string {
	return filepath.Join(workDir, t.Name+".secrets")
}

// HasSecrets reports whether t brings any secret to materialise.
func HasSecrets(t runner.Task) bool { return len(t.Job.Spec.Secrets) > 0 || len(t.Secrets) > 0 }

// Resolver reads the value a secret reference (secretsmanager:..., ssm:/...)
// names; *secretref.Resolver is the one the agent uses. Its errors name the
// secret and never hold a value.
type Resolver interface {
	Resolve(ctx context.Context, s job.Secret) (string, error)
}

// WriteSecrets makes dir afresh (0700) and writes one 0600 file per
// secret of t, named after it, holding its value: sealed values as the
// claim carried them, references as resolve reads them now. It returns the
// values it resolved, which the agent does not know and so cannot redact:
// the caller redacts them from what the run reports. With a nil resolve a
// reference is refused, naming the secret.
func WriteSecrets(ctx context.Context, dir string, t runner.Task, resolve Resolver) (resolved []string, err error) {
	values := map[string]string{}
	for _, s := range t.Job.Spec.Secrets {
		if strings.HasPrefix(s.Ref, job.SealedRef) {
			v, ok := t.Secrets[s.Name]
			if !ok {
				return nil, fmt.Errorf("%w: secret %s: the claim carried no value for it", job.ErrInvalid, s.Name)
			}
			values[s.Name] = v
			continue
		}
		if resolve == nil {
			return nil, fmt.Errorf("%w: secret %s is a reference (%s) and this runner has no AWS access to resolve it; references are resolved inside SageMaker training jobs, or by an agent given AWS credentials; on a local queue you can also give the value at launch (--secret %s=VALUE)",
				job.ErrInvalid, s.Name, refKind(s.Ref), s.Name)
		}
		v, err := resolve.Resolve(ctx, s)
		if err != nil {
			return nil, err
		}
		values[s.Name] = v
		resolved = append(resolved, v)
	}
	maps.Copy(values, t.Secrets)
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("clearing secrets folder %s: %w", dir, err)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, fmt.Errorf("creating secrets folder %s: %w", dir, err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating secrets folder %s: %w", dir, err)
	}
	for _, name := range slices.Sorted(maps.Keys(values)) {
		if err := job.ValidateSecretName(name); err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
		if err := writeSecret(filepath.Join(dir, name), values[name]); err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("writing secret %s: %w", name, err)
		}
	}
	return resolved, nil
}

// ReadResolved returns the values of t's references as WriteSecrets left
// them in dir, so that a runner re-attaching to a run it did not start can
// still redact them; a missing folder or file holds none.
func ReadResolved(dir string, t runner.Task) ([]string, error) {
	var values []string
	for _, s := range t.Job.Spec.Secrets {
		if strings.HasPrefix(s.Ref, job.SealedRef) || job.ValidateSecretName(s.Name) != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, s.Name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading secret %s: %w", s.Name, err)
		}
		values = append(values, string(b))
	}
	return values, nil
}

func writeSecret(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(value); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// refKind names a reference's kind without the rest of it.
func refKind(ref string) string {
	kind, _, _ := strings.Cut(ref, ":")
	return kind + ":..."
}

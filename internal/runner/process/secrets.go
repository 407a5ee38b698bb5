package process

import (
	"fmt"
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

// WriteSecrets makes dir afresh (0700) and writes one 0600 file per
// secret of t, named after it, holding its value. A local run has no
// Secrets Manager or SSM client of its own, and the agent resolves no
// references, so a reference is refused here: they are for sagemaker
// queues, whose containers resolve them with their execution role.
func WriteSecrets(dir string, t runner.Task) error {
	values := map[string]string{}
	for _, s := range t.Job.Spec.Secrets {
		if !strings.HasPrefix(s.Ref, job.SealedRef) {
			return fmt.Errorf("%w: secret %s is a reference (%s): references are resolved only inside SageMaker training jobs; on a local queue give the value at launch (--secret %s=VALUE)",
				job.ErrInvalid, s.Name, refKind(s.Ref), s.Name)
		}
		v, ok := t.Secrets[s.Name]
		if !ok {
			return fmt.Errorf("%w: secret %s: the claim carried no value for it", job.ErrInvalid, s.Name)
		}
		values[s.Name] = v
	}
	maps.Copy(values, t.Secrets)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("clearing secrets folder %s: %w", dir, err)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("creating secrets folder %s: %w", dir, err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("creating secrets folder %s: %w", dir, err)
	}
	for _, name := range slices.Sorted(maps.Keys(values)) {
		if err := job.ValidateSecretName(name); err != nil {
			_ = os.RemoveAll(dir)
			return err
		}
		if err := writeSecret(filepath.Join(dir, name), values[name]); err != nil {
			_ = os.RemoveAll(dir)
			return fmt.Errorf("writing secret %s: %w", name, err)
		}
	}
	return nil
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

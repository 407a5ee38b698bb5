package server

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"

	"github.com/slipway-ml/slipway/internal/job"
)

// Secrets given as values at launch are sealed with AES-256-GCM under the
// server's key (Config.SecretsKey) before the job is stored, bound to the
// job and the secret's name, so the database holds only ciphertext. The
// agent that claims the job gets the values in the claim's answer, and only
// it; every log line, reason and output an agent reports for the job has
// them replaced with [redacted] before it is stored or logged.

// secrets seals and opens a server's secret values, and remembers each
// job's values for redaction.
type secrets struct {
	aead cipher.AEAD // nil: no key, values cannot be given

	mu     sync.Mutex
	values map[string][]string // job id → its secret values (nil: none)
}

func newSecrets(key []byte) (*secrets, error) {
	s := &secrets{values: map[string][]string{}}
	if len(key) == 0 {
		return s, nil
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("%w: secrets key: %d bytes, want 32", job.ErrInvalid, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("creating the secrets cipher: %w", err)
	}
	if s.aead, err = cipher.NewGCM(block); err != nil {
		return nil, fmt.Errorf("creating the secrets cipher: %w", err)
	}
	return s, nil
}

func aad(jobID, name string) []byte { return []byte("slipway secret\x00" + jobID + "\x00" + name) }

// seal adds values to j's secrets, sealed.
func (s *secrets) seal(j job.Job, values map[string]string) (job.Job, error) {
	if len(values) == 0 {
		return j, nil
	}
	if s.aead == nil {
		return j, fmt.Errorf("%w: secrets: this server has no secrets key, so it takes secret values by reference only (secretsmanager:..., ssm:/...); start it with --secrets-key", job.ErrInvalid)
	}
	spec := j.Spec
	spec.Secrets = append([]job.Secret(nil), spec.Secrets...)
	for name, v := range values {
		if err := job.ValidateSecretName(name); err != nil {
			return j, err
		}
		if v == "" {
			return j, fmt.Errorf("%w: secret %s: empty value", job.ErrInvalid, name)
		}
		nonce := make([]byte, s.aead.NonceSize())
		if _, err := rand.Read(nonce); err != nil {
			return j, fmt.Errorf("sealing secret %s: %w", name, err)
		}
		box := s.aead.Seal(nonce, nonce, []byte(v), aad(j.ID, name))
		spec.Secrets = append(spec.Secrets, job.Secret{Name: name, Ref: job.SealedRef + base64.RawStdEncoding.EncodeToString(box)})
	}
	if err := spec.Validate(); err != nil {
		return j, err
	}
	j.Spec = spec
	return j, nil
}

// open returns the values of j's sealed secrets, by name.
func (s *secrets) open(j job.Job) (map[string]string, error) {
	var out map[string]string
	for _, sec := range j.Spec.Secrets {
		b64, ok := strings.CutPrefix(sec.Ref, job.SealedRef)
		if !ok {
			continue
		}
		if s.aead == nil {
			return nil, fmt.Errorf("job %s: secret %s is sealed, and this server has no secrets key", j.ID, sec.Name)
		}
		box, err := base64.RawStdEncoding.DecodeString(b64)
		if err != nil || len(box) < s.aead.NonceSize() {
			return nil, fmt.Errorf("job %s: secret %s: malformed sealed value", j.ID, sec.Name)
		}
		n := s.aead.NonceSize()
		v, err := s.aead.Open(nil, box[:n], box[n:], aad(j.ID, sec.Name))
		if err != nil {
			return nil, fmt.Errorf("job %s: opening secret %s (was the secrets key changed?): %w", j.ID, sec.Name, err)
		}
		if out == nil {
			out = map[string]string{}
		}
		out[sec.Name] = string(v)
	}
	return out, nil
}

// valuesOf returns the secret values of job id, for redaction.
func (s *Server) secretValuesOf(ctx context.Context, id string) []string {
	s.secrets.mu.Lock()
	vs, ok := s.secrets.values[id]
	s.secrets.mu.Unlock()
	if ok {
		return vs
	}
	j, err := s.store.GetJob(ctx, id)
	if err != nil {
		return nil // the update fails on its own
	}
	if allowQueue(ctx, j.Queue) != nil {
		// A token scoped to other queues: the store refuses its update, and
		// the job's secrets are not opened on its behalf.
		return nil
	}
	m, err := s.secrets.open(j)
	if err != nil {
		s.log.Error("opening a job's secrets to redact them", "job", id, "err", err)
	}
	return s.secrets.remember(id, m)
}

// forget drops job id's secret values once it has ended: no agent reports
// for it any more, and a late report that still comes reads them again.
func (s *secrets) forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.values, id)
}

// remember keeps job id's secret values m for redaction, and returns them.
// The claim that opens them remembers them, so that its agent's reports
// need no read of the job to be redacted.
func (s *secrets) remember(id string, m map[string]string) []string {
	vs := make([]string, 0, len(m))
	for _, v := range m {
		vs = append(vs, v)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.values) > 4096 {
		clear(s.values)
	}
	s.values[id] = vs
	return vs
}

// redactLines hides job id's secret values in lines.
func (s *Server) redactLines(ctx context.Context, id string, lines []job.LogLine) {
	vs := s.secretValuesOf(ctx, id)
	if len(vs) == 0 {
		return
	}
	for i := range lines {
		lines[i].Text = job.Redact(lines[i].Text, vs)
	}
}

// redactReport hides job id's secret values in what an agent reports.
func (s *Server) redactReport(ctx context.Context, id string, reason string, outputs map[string]string) (string, map[string]string) {
	vs := s.secretValuesOf(ctx, id)
	if len(vs) == 0 {
		return reason, outputs
	}
	red := make(map[string]string, len(outputs))
	for k, v := range outputs {
		red[job.Redact(k, vs)] = job.Redact(v, vs)
	}
	return job.Redact(reason, vs), red
}

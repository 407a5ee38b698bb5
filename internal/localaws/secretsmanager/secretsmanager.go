// Package secretsmanager is the local Secrets Manager service: secrets with
// versions and staging labels, kept in one owner-only JSON file under the
// endpoint's data directory. It serves what Slipway's agent and its users
// need to rehearse secret references: CreateSecret, GetSecretValue (by name,
// full or partial ARN; by VersionId or VersionStage), PutSecretValue and
// DeleteSecret, with the service's error codes.
//
// It is a test double, not a vault: values are stored in clear.
package secretsmanager

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/slipway-ml/slipway/internal/localaws/awsjson"
	"github.com/slipway-ml/slipway/internal/localaws/statefile"
)

// TargetPrefix is the X-Amz-Target prefix of Secrets Manager operations.
const TargetPrefix = "secretsmanager."

// The staging labels the service moves on its own.
const (
	stageCurrent  = "AWSCURRENT"
	stagePrevious = "AWSPREVIOUS"
)

// recoveryDays is the recovery window of a DeleteSecret without one.
const recoveryDays = 30

// Service holds every secret; safe for concurrent use.
type Service struct {
	path    string
	region  string
	account string
	now     func() time.Time

	mu      sync.Mutex
	secrets map[string]*secret // by name
}

type secret struct {
	Name        string     `json:"name"`
	ARN         string     `json:"arn"`
	Description string     `json:"description,omitempty"`
	Created     time.Time  `json:"created"`
	Deleted     *time.Time `json:"deletionDate,omitempty"` // scheduled for deletion at
	Versions    []*version `json:"versions"`
}

type version struct {
	ID      string    `json:"id"`
	String  *string   `json:"string,omitempty"`
	Binary  []byte    `json:"binary,omitempty"`
	Stages  []string  `json:"stages"`
	Created time.Time `json:"created"`
}

// Open returns the service keeping its file under dir, with what an
// earlier run left there.
func Open(dir, region, account string) (*Service, error) {
	s := &Service{path: filepath.Join(dir, "secrets.json"), region: region, account: account,
		now: time.Now, secrets: map[string]*secret{}}
	if err := statefile.Load(s.path, &s.secrets); err != nil {
		return nil, fmt.Errorf("opening local Secrets Manager: %w", err)
	}
	return s, nil
}

// Handler returns the handler of one operation (X-Amz-Target after the
// prefix), or nil when it is not served.
func (s *Service) Handler(op string, log *slog.Logger) http.Handler {
	return awsjson.Ops{
		"CreateSecret":   s.createSecret,
		"GetSecretValue": s.getSecretValue,
		"PutSecretValue": s.putSecretValue,
		"DeleteSecret":   s.deleteSecret,
	}.Handler(op, log)
}

var validName = regexp.MustCompile(`^[A-Za-z0-9/_+=.@-]{1,512}$`)

func errNotFound() error {
	return awsjson.Errorf("ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
}

func errInvalidParam(format string, args ...any) error {
	return awsjson.Errorf("InvalidParameterException", format, args...)
}

// value is a secret value as requests carry it: one of the two members.
type value struct {
	SecretString *string `json:"SecretString,omitempty"`
	SecretBinary []byte  `json:"SecretBinary,omitempty"` // base64 on the wire, as encoding/json does it
}

func (v value) check() error {
	if v.SecretString != nil && v.SecretBinary != nil {
		return errInvalidParam("You can't specify both a binary secret value and a string secret value in the same secret.")
	}
	if v.SecretString != nil && len(*v.SecretString) > 65536 || len(v.SecretBinary) > 65536 {
		return errInvalidParam("The secret value exceeds the 65536 byte limit.")
	}
	return nil
}

func (v value) empty() bool { return v.SecretString == nil && v.SecretBinary == nil }

func (v value) equal(ver *version) bool {
	if (v.SecretString == nil) != (ver.String == nil) {
		return false
	}
	if v.SecretString != nil && *v.SecretString != *ver.String {
		return false
	}
	return string(v.SecretBinary) == string(ver.Binary)
}

type out struct {
	ARN           string        `json:"ARN"`
	Name          string        `json:"Name"`
	VersionId     string        `json:"VersionId,omitempty"`
	VersionStages []string      `json:"VersionStages,omitempty"`
	DeletionDate  *awsjson.Time `json:"DeletionDate,omitempty"`
}

func (s *Service) createSecret(r *http.Request) (any, error) {
	var in struct {
		Name               string `json:"Name"`
		Description        string `json:"Description"`
		ClientRequestToken string `json:"ClientRequestToken"`
		value
	}
	if err := awsjson.Decode(r, &in); err != nil {
		return nil, err
	}
	if !validName.MatchString(in.Name) {
		return nil, awsjson.Validation("Invalid name: 1 to 512 of letters, digits and /_+=.@-")
	}
	if err := in.check(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.secrets[in.Name]; ok {
		if old.Deleted != nil {
			return nil, awsjson.Errorf("InvalidRequestException", "You can't create this secret because a secret with this name is already scheduled for deletion.")
		}
		// A retried create (same token, same value) answers as the first did.
		if ver := old.version(in.ClientRequestToken); ver != nil && in.ClientRequestToken != "" && in.equal(ver) {
			return out{ARN: old.ARN, Name: old.Name, VersionId: ver.ID}, nil
		}
		return nil, awsjson.Errorf("ResourceExistsException", "The operation failed because the secret %s already exists.", in.Name)
	}
	now := s.now().UTC()
	sec := &secret{Name: in.Name, Description: in.Description, Created: now,
		ARN: fmt.Sprintf("arn:aws:secretsmanager:%s:%s:secret:%s-%s", s.region, s.account, in.Name, suffix())}
	res := out{ARN: sec.ARN, Name: sec.Name}
	if !in.empty() {
		ver := sec.add(in.value, in.ClientRequestToken, now)
		res.VersionId = ver.ID
	}
	s.secrets[in.Name] = sec
	if err := s.saveLocked(); err != nil {
		delete(s.secrets, in.Name)
		return nil, err
	}
	return res, nil
}

func (s *Service) getSecretValue(r *http.Request) (any, error) {
	var in struct {
		SecretId     string `json:"SecretId"`
		VersionId    string `json:"VersionId"`
		VersionStage string `json:"VersionStage"`
	}
	if err := awsjson.Decode(r, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.liveLocked(in.SecretId)
	if err != nil {
		return nil, err
	}
	var ver *version
	switch {
	case in.VersionId != "":
		ver = sec.version(in.VersionId)
		if ver != nil && in.VersionStage != "" && !slices.Contains(ver.Stages, in.VersionStage) {
			ver = nil
		}
	default:
		stage := in.VersionStage
		if stage == "" {
			stage = stageCurrent
		}
		ver = sec.staged(stage)
		if ver == nil {
			return nil, awsjson.Errorf("ResourceNotFoundException", "Secrets Manager can't find the specified secret value for staging label: %s", stage)
		}
	}
	if ver == nil {
		return nil, awsjson.Errorf("ResourceNotFoundException", "Secrets Manager can't find the specified secret value for VersionId: %s", in.VersionId)
	}
	return struct {
		ARN           string       `json:"ARN"`
		Name          string       `json:"Name"`
		VersionId     string       `json:"VersionId"`
		VersionStages []string     `json:"VersionStages"`
		CreatedDate   awsjson.Time `json:"CreatedDate"`
		value
	}{sec.ARN, sec.Name, ver.ID, ver.Stages, awsjson.Time{Time: ver.Created}, value{ver.String, ver.Binary}}, nil
}

func (s *Service) putSecretValue(r *http.Request) (any, error) {
	var in struct {
		SecretId           string   `json:"SecretId"`
		ClientRequestToken string   `json:"ClientRequestToken"`
		VersionStages      []string `json:"VersionStages"`
		value
	}
	if err := awsjson.Decode(r, &in); err != nil {
		return nil, err
	}
	if err := in.check(); err != nil {
		return nil, err
	}
	if in.empty() {
		return nil, errInvalidParam("You must provide either SecretString or SecretBinary.")
	}
	if len(in.VersionStages) > 0 && !slices.Equal(in.VersionStages, []string{stageCurrent}) {
		return nil, errInvalidParam("The local endpoint supports only the AWSCURRENT staging label.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.liveLocked(in.SecretId)
	if err != nil {
		return nil, err
	}
	if ver := sec.version(in.ClientRequestToken); ver != nil && in.ClientRequestToken != "" {
		if !in.equal(ver) {
			return nil, awsjson.Errorf("ResourceExistsException", "You can't modify an existing version, you can only create a new version.")
		}
		return out{ARN: sec.ARN, Name: sec.Name, VersionId: ver.ID, VersionStages: ver.Stages}, nil
	}
	before := cloneVersions(sec.Versions)
	ver := sec.add(in.value, in.ClientRequestToken, s.now().UTC())
	if err := s.saveLocked(); err != nil {
		sec.Versions = before
		return nil, err
	}
	return out{ARN: sec.ARN, Name: sec.Name, VersionId: ver.ID, VersionStages: ver.Stages}, nil
}

func (s *Service) deleteSecret(r *http.Request) (any, error) {
	var in struct {
		SecretId                   string `json:"SecretId"`
		ForceDeleteWithoutRecovery bool   `json:"ForceDeleteWithoutRecovery"`
		RecoveryWindowInDays       int64  `json:"RecoveryWindowInDays"`
	}
	if err := awsjson.Decode(r, &in); err != nil {
		return nil, err
	}
	if in.ForceDeleteWithoutRecovery && in.RecoveryWindowInDays != 0 {
		return nil, errInvalidParam("You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.")
	}
	days := in.RecoveryWindowInDays
	if days == 0 {
		days = recoveryDays
	}
	if !in.ForceDeleteWithoutRecovery && (days < 7 || days > 30) {
		return nil, errInvalidParam("RecoveryWindowInDays value must be between 7 and 30 days (inclusive).")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := s.findLocked(in.SecretId)
	if sec == nil {
		return nil, errNotFound()
	}
	now := s.now().UTC()
	if in.ForceDeleteWithoutRecovery {
		delete(s.secrets, sec.Name)
		if err := s.saveLocked(); err != nil {
			s.secrets[sec.Name] = sec
			return nil, err
		}
		return out{ARN: sec.ARN, Name: sec.Name, DeletionDate: awsjson.NewTime(now)}, nil
	}
	if sec.Deleted != nil {
		return nil, awsjson.Errorf("InvalidRequestException", "You can't perform this operation on the secret because it was already scheduled for deletion.")
	}
	at := now.Add(time.Duration(days) * 24 * time.Hour)
	sec.Deleted = &at
	if err := s.saveLocked(); err != nil {
		sec.Deleted = nil
		return nil, err
	}
	return out{ARN: sec.ARN, Name: sec.Name, DeletionDate: awsjson.NewTime(at)}, nil
}

// findLocked finds a secret by name, full ARN, or partial ARN (the ARN
// without the random suffix).
func (s *Service) findLocked(id string) *secret {
	if sec, ok := s.secrets[id]; ok {
		return sec
	}
	if !strings.HasPrefix(id, "arn:") {
		return nil
	}
	for _, sec := range s.secrets {
		if sec.ARN == id || sec.ARN[:len(sec.ARN)-7] == id {
			return sec
		}
	}
	return nil
}

// liveLocked finds a secret that is not scheduled for deletion.
func (s *Service) liveLocked(id string) (*secret, error) {
	if id == "" {
		return nil, errInvalidParam("SecretId is required.")
	}
	sec := s.findLocked(id)
	if sec == nil {
		return nil, errNotFound()
	}
	if sec.Deleted != nil {
		return nil, awsjson.Errorf("InvalidRequestException", "You can't perform this operation on the secret because it was marked for deletion.")
	}
	return sec, nil
}

func (s *Service) saveLocked() error { return statefile.Save(s.path, s.secrets) }

// add makes a new current version, moving the old current one to previous.
func (sec *secret) add(v value, token string, now time.Time) *version {
	if token == "" {
		token = uuid()
	}
	for _, old := range sec.Versions {
		old.Stages = slices.DeleteFunc(old.Stages, func(st string) bool { return st == stagePrevious })
		if i := slices.Index(old.Stages, stageCurrent); i >= 0 {
			old.Stages[i] = stagePrevious
		}
	}
	// Versions without a label are deprecated; keep the list short.
	sec.Versions = slices.DeleteFunc(sec.Versions, func(old *version) bool { return len(old.Stages) == 0 })
	ver := &version{ID: token, String: v.SecretString, Binary: v.SecretBinary, Stages: []string{stageCurrent}, Created: now}
	sec.Versions = append(sec.Versions, ver)
	return ver
}

func (sec *secret) version(id string) *version {
	for _, v := range sec.Versions {
		if v.ID == id {
			return v
		}
	}
	return nil
}

func (sec *secret) staged(stage string) *version {
	for _, v := range sec.Versions {
		if slices.Contains(v.Stages, stage) {
			return v
		}
	}
	return nil
}

func cloneVersions(vs []*version) []*version {
	out := make([]*version, len(vs))
	for i, v := range vs {
		c := *v
		c.Stages = slices.Clone(v.Stages)
		out[i] = &c
	}
	return out
}

// suffix is the six random characters AWS appends to a secret's ARN.
func suffix() string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b)
}

func uuid() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

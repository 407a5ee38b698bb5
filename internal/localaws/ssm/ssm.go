// Package ssm is the local SSM Parameter Store: String, StringList and
// SecureString parameters with versions, kept in one owner-only JSON file
// under the endpoint's data directory. It serves PutParameter (Overwrite),
// GetParameter (WithDecryption) and DeleteParameter with the service's
// error codes, which is what a secret reference "ssm:/path" needs.
//
// It is a test double, not a vault: SecureString values are stored in
// clear; without WithDecryption they are answered as an opaque blob.
package ssm

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/slipway-ml/slipway/internal/localaws/awsjson"
	"github.com/slipway-ml/slipway/internal/localaws/statefile"
)

// TargetPrefix is the X-Amz-Target prefix of SSM operations.
const TargetPrefix = "AmazonSSM."

// The parameter types.
const (
	typeString       = "String"
	typeStringList   = "StringList"
	typeSecureString = "SecureString"
)

// Service holds every parameter; safe for concurrent use.
type Service struct {
	path    string
	region  string
	account string
	now     func() time.Time

	mu     sync.Mutex
	params map[string]*parameter // by name
}

type parameter struct {
	Name        string    `json:"name"`
	Type        string    `json:"type"`
	Value       string    `json:"value"`
	Description string    `json:"description,omitempty"`
	KeyID       string    `json:"keyId,omitempty"`
	DataType    string    `json:"dataType"`
	Version     int64     `json:"version"`
	Modified    time.Time `json:"modified"`
}

// Open returns the service keeping its file under dir, with what an
// earlier run left there.
func Open(dir, region, account string) (*Service, error) {
	s := &Service{path: filepath.Join(dir, "parameters.json"), region: region, account: account,
		now: time.Now, params: map[string]*parameter{}}
	if err := statefile.Load(s.path, &s.params); err != nil {
		return nil, fmt.Errorf("opening local SSM: %w", err)
	}
	return s, nil
}

// Handler returns the handler of one operation (X-Amz-Target after the
// prefix), or nil when it is not served.
func (s *Service) Handler(op string, log *slog.Logger) http.Handler {
	return awsjson.Ops{
		"PutParameter":    s.putParameter,
		"GetParameter":    s.getParameter,
		"DeleteParameter": s.deleteParameter,
	}.Handler(op, log)
}

var validName = regexp.MustCompile(`^[A-Za-z0-9_.\-/]+$`)

// checkName applies the service's naming rules.
func checkName(name string) error {
	if len(name) > 2048 || !validName.MatchString(name) {
		return awsjson.Validation("Parameter name %q: must be 1 to 2048 of letters, digits and _.-/", name)
	}
	if strings.Contains(name, "/") && !strings.HasPrefix(name, "/") || strings.Contains(name, "//") || strings.HasSuffix(name, "/") {
		return awsjson.Validation("Parameter name %s: a hierarchy must be fully qualified: begin with '/', no empty or trailing levels.", name)
	}
	first := strings.ToLower(strings.TrimPrefix(name, "/"))
	if strings.HasPrefix(first, "aws") || strings.HasPrefix(first, "ssm") {
		return awsjson.Validation("No access to reserved parameter name: %s.", name)
	}
	return nil
}

func errNotFound(name string) error {
	return awsjson.Errorf("ParameterNotFound", "Parameter %s not found.", name)
}

func (s *Service) putParameter(r *http.Request) (any, error) {
	var in struct {
		Name        string  `json:"Name"`
		Value       *string `json:"Value"`
		Type        string  `json:"Type"`
		Overwrite   bool    `json:"Overwrite"`
		Description string  `json:"Description"`
		KeyId       string  `json:"KeyId"`
		DataType    string  `json:"DataType"`
		Tier        string  `json:"Tier"`
	}
	if err := awsjson.Decode(r, &in); err != nil {
		return nil, err
	}
	if err := checkName(in.Name); err != nil {
		return nil, err
	}
	if in.Value == nil || *in.Value == "" {
		return nil, awsjson.Validation("1 validation error detected: Value at 'value' failed to satisfy constraint: Member must have length greater than or equal to 1")
	}
	if len(*in.Value) > 8192 {
		return nil, awsjson.Validation("1 validation error detected: Value at 'value' failed to satisfy constraint: Member must have length less than or equal to 8192")
	}
	switch in.Type {
	case "", typeString, typeStringList, typeSecureString:
	default:
		return nil, awsjson.Errorf("UnsupportedParameterType", "Parameter type %s is not supported.", in.Type)
	}
	if in.KeyId != "" && in.Type != typeSecureString {
		return nil, awsjson.Validation("KeyId is required for SecureString type parameter only.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, exists := s.params[in.Name]
	if exists && !in.Overwrite {
		return nil, awsjson.Errorf("ParameterAlreadyExists", "The parameter already exists. To overwrite this value, set the overwrite option in the request to true.")
	}
	p := &parameter{Name: in.Name, Type: in.Type, Value: *in.Value, Description: in.Description,
		KeyID: in.KeyId, DataType: in.DataType, Version: 1, Modified: s.now().UTC()}
	if exists {
		p.Version = old.Version + 1
		if p.Type == "" {
			p.Type = old.Type
		}
		if p.Description == "" {
			p.Description = old.Description
		}
	}
	if p.Type == "" {
		return nil, awsjson.Validation("A parameter type is required when you create a parameter.")
	}
	if p.DataType == "" {
		p.DataType = "text"
	}
	if p.Type == typeSecureString && p.KeyID == "" {
		p.KeyID = "alias/aws/ssm"
	}
	s.params[in.Name] = p
	if err := s.saveLocked(); err != nil {
		if exists {
			s.params[in.Name] = old
		} else {
			delete(s.params, in.Name)
		}
		return nil, err
	}
	return map[string]any{"Version": p.Version, "Tier": "Standard"}, nil
}

func (s *Service) getParameter(r *http.Request) (any, error) {
	var in struct {
		Name           string `json:"Name"`
		WithDecryption bool   `json:"WithDecryption"`
	}
	if err := awsjson.Decode(r, &in); err != nil {
		return nil, err
	}
	if in.Name == "" {
		return nil, awsjson.Validation("1 validation error detected: Value at 'name' failed to satisfy constraint: Member must have length greater than or equal to 1")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.findLocked(in.Name)
	if p == nil {
		return nil, errNotFound(in.Name)
	}
	v := p.Value
	if p.Type == typeSecureString && !in.WithDecryption {
		v = opaque(p)
	}
	return map[string]any{"Parameter": map[string]any{
		"Name": p.Name, "Type": p.Type, "Value": v, "Version": p.Version, "ARN": s.arn(p.Name),
		"LastModifiedDate": awsjson.Time{Time: p.Modified}, "DataType": p.DataType,
	}}, nil
}

func (s *Service) deleteParameter(r *http.Request) (any, error) {
	var in struct {
		Name string `json:"Name"`
	}
	if err := awsjson.Decode(r, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.findLocked(in.Name)
	if p == nil {
		return nil, errNotFound(in.Name)
	}
	delete(s.params, p.Name)
	if err := s.saveLocked(); err != nil {
		s.params[p.Name] = p
		return nil, err
	}
	return nil, nil
}

// findLocked finds a parameter by name or by ARN.
func (s *Service) findLocked(name string) *parameter {
	if p, ok := s.params[name]; ok {
		return p
	}
	prefix := fmt.Sprintf("arn:aws:ssm:%s:%s:parameter", s.region, s.account)
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return nil
	}
	// parameter/a/b is /a/b; parameter/a is a (or /a).
	if p, ok := s.params[rest]; ok {
		return p
	}
	return s.params[strings.TrimPrefix(rest, "/")]
}

func (s *Service) arn(name string) string {
	return fmt.Sprintf("arn:aws:ssm:%s:%s:parameter/%s", s.region, s.account, strings.TrimPrefix(name, "/"))
}

func (s *Service) saveLocked() error { return statefile.Save(s.path, s.params) }

// opaque stands for a SecureString's ciphertext: base64, as the service
// answers it, and saying nothing about the value.
func opaque(p *parameter) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%d\x00%s", p.Name, p.Version, p.Value)))
	return base64.StdEncoding.EncodeToString(append([]byte("localaws-kms:"), sum[:]...))
}

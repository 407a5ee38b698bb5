package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/service/sagemaker"

	"github.com/slipway-ml/slipway/internal/job"
)

// Required marks a queue config field the user still has to fill.
const Required = "<REQUIRED>"

// DefaultSageMakerQueue is the config a new sagemaker queue gets when it is
// created without one. It is not ready until RoleArn and
// OutputDataConfig.S3OutputPath are filled (see SageMakerQueue.Missing).
const DefaultSageMakerQueue = `{"RoleArn": "<REQUIRED>", "EcrRepoName": "",
 "ResourceConfig": {"InstanceType": "ml.m4.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 2},
 "OutputDataConfig": {"S3OutputPath": "<REQUIRED>"},
 "StoppingCondition": {"MaxRuntimeInSeconds": 3600}}`

// extraMembers are the top-level members allowed beyond CreateTrainingJob's:
// EcrRepoName names the ECR repository the job's image is pushed to (a W&B
// Launch queue key, kept for compatibility).
var extraMembers = map[string]rule{
	"EcrRepoName": str(0, 256, `^$|^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$`, "an ECR repository name"),
}

// readiness are the fields a queue needs filled before it can run jobs.
var readiness = map[string]bool{"RoleArn": true, "OutputDataConfig.S3OutputPath": true}

// SageMakerQueue is a checked sagemaker queue config.
type SageMakerQueue struct {
	raw          []byte
	body         map[string]any
	placeholders []Placeholder
}

// Placeholder is one {{name}} template variable in a queue config.
type Placeholder struct {
	Name string // the variable
	Path string // where it is, e.g. "ResourceConfig.InstanceType"
	// Whole is true when the placeholder is the entire value, which the
	// variable's type then replaces ("InstanceCount": "{{n}}" becomes a
	// number); false when it is spliced into a longer string.
	Whole bool
	kind  shapeKind
	enum  []string
}

// ValidateSageMakerQueue checks body against SageMaker's CreateTrainingJob
// request model: member names, JSON kinds, enum values, patterns and
// limits, all errors at once sorted by path. {{name}} placeholders are
// accepted in place of any value, and strings holding ${...} macros skip
// their pattern checks: both are filled later and the result is checked
// again. RoleArn and OutputDataConfig.S3OutputPath may still be missing or
// <REQUIRED>; Missing reports them. The queue is nil only when body is not
// a JSON object.
func ValidateSageMakerQueue(body []byte) (*SageMakerQueue, Errors) {
	v, err := decodeJSON(body)
	if err != nil {
		return nil, Errors{{Msg: err.Error()}}
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, Errors{{Msg: fmt.Sprintf("got %s, want a JSON object", describeJSON(v))}}
	}
	q := &SageMakerQueue{raw: slices.Clone(body), body: obj}
	c := &smChecker{q: q}
	c.checkStruct(obj, trainingJobModel(), "", "")
	c.crossChecks(obj)
	sortErrors(c.errs)
	slices.SortStableFunc(q.placeholders, func(a, b Placeholder) int { return comparePaths(a.Path, b.Path) })
	return q, c.errs
}

// decodeJSON decodes one JSON value, keeping numbers exact.
func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("invalid JSON: %v", err)
	}
	end := dec.InputOffset()
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("invalid JSON: data after the top-level value at offset %d", end)
	}
	return v, nil
}

// Missing returns the readiness fields still unset or <REQUIRED>: among
// RoleArn and OutputDataConfig.S3OutputPath. A queue with any is not ready.
func (q *SageMakerQueue) Missing() []string {
	var out []string
	for _, p := range [][]string{{"RoleArn"}, {"OutputDataConfig", "S3OutputPath"}} { // the readiness fields
		var v any = q.body
		for _, k := range p {
			m, _ := v.(map[string]any)
			v = m[k]
		}
		if s, ok := v.(string); v == nil || ok && (strings.TrimSpace(s) == "" || strings.TrimSpace(s) == Required) {
			out = append(out, strings.Join(p, "."))
		}
	}
	return out
}

// Placeholders returns the {{name}} template variables in the config,
// Required reports the members CreateTrainingJob requires that the body
// lacks, beyond those Missing reports and those the agent fills: unlike
// RoleArn they need no account-specific value, so a queue without them is
// wrong, not merely not ready.
func (q *SageMakerQueue) Required() Errors {
	var errs Errors
	if q.body["ResourceConfig"] == nil && q.body["ServerlessJobConfig"] == nil {
		errs = append(errs, FieldError{Path: "ResourceConfig", Msg: `missing: CreateTrainingJob requires it, e.g. {"InstanceType": "ml.m4.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 2}`})
	}
	if q.body["StoppingCondition"] == nil {
		errs = append(errs, FieldError{Path: "StoppingCondition", Msg: `missing: CreateTrainingJob requires it, e.g. {"MaxRuntimeInSeconds": 3600}`})
	}
	return errs
}

// sorted by path.
func (q *SageMakerQueue) Placeholders() []Placeholder { return slices.Clone(q.placeholders) }

// EcrRepoName returns the EcrRepoName member, or "".
func (q *SageMakerQueue) EcrRepoName() string {
	s, _ := q.body["EcrRepoName"].(string)
	return s
}

// Body returns the config as given.
func (q *SageMakerQueue) Body() json.RawMessage { return slices.Clone(q.raw) }

// TrainingJobInput returns the config as the SDK's request, without
// Slipway's extra members. It fails while placeholders remain unfilled.
func (q *SageMakerQueue) TrainingJobInput() (*sagemaker.CreateTrainingJobInput, error) {
	if len(q.placeholders) > 0 {
		p := q.placeholders[0]
		return nil, fmt.Errorf("%w: %s: template variable {{%s}} is not filled", job.ErrInvalid, p.Path, p.Name)
	}
	body := make(map[string]any, len(q.body))
	for k, v := range q.body {
		if _, extra := extraMembers[k]; !extra {
			body[k] = v
		}
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encoding training job request: %w", err)
	}
	in := &sagemaker.CreateTrainingJobInput{}
	if err := json.Unmarshal(b, in); err != nil {
		return nil, fmt.Errorf("%w: decoding training job request: %v", job.ErrInvalid, err)
	}
	return in, nil
}

var (
	wholeVar = regexp.MustCompile(`^\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}$`)
	anyVar   = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)
)

type smChecker struct {
	q    *SageMakerQueue
	errs Errors
}

func (c *smChecker) bad(path, format string, args ...any) {
	c.errs = append(c.errs, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// check checks v against s at path; norm is path with list indices as "[]"
// and map keys as "{}", the key into rules.
func (c *smChecker) check(v any, s *shape, path, norm string) {
	if v == nil {
		return // JSON null: the member is absent
	}
	if str, ok := v.(string); ok && s.kind != kindString && s.kind != kindEnum && s.kind != kindAny {
		if m := wholeVar.FindStringSubmatch(str); m != nil {
			c.q.placeholders = append(c.q.placeholders, Placeholder{Name: m[1], Path: path, Whole: true, kind: s.kind})
			return
		}
	}
	r := rules[norm]
	switch s.kind {
	case kindStruct:
		obj, ok := v.(map[string]any)
		if !ok {
			c.bad(path, "got %s, want an object (%s)", describeJSON(v), s.name)
			return
		}
		c.checkStruct(obj, s, path, norm)
	case kindList:
		list, ok := v.([]any)
		if !ok {
			c.bad(path, "got %s, want a list", describeJSON(v))
			return
		}
		c.checkCount(path, len(list), r, "item")
		for i, e := range list {
			c.check(e, s.elem, indexPath(path, i), norm+"[]")
		}
	case kindMap:
		obj, ok := v.(map[string]any)
		if !ok {
			c.bad(path, "got %s, want an object of names to values", describeJSON(v))
			return
		}
		c.checkCount(path, len(obj), r, "entry")
		for k, e := range obj {
			p := joinPath(path, k)
			if n := utf8.RuneCountInString(k); n < r.keyMinLen || r.keyMaxLen > 0 && n > r.keyMaxLen {
				c.bad(p, "key of %d characters: want %d to %d", n, r.keyMinLen, r.keyMaxLen)
			} else if r.key != nil && !r.key.MatchString(k) && !anyVar.MatchString(k) {
				c.bad(p, "key %q: want a match for %s", k, r.key)
			}
			c.check(e, s.elem, p, norm+"{}")
		}
	case kindString, kindEnum:
		c.checkString(v, s, path, r)
	case kindInt:
		n, ok := v.(json.Number)
		if !ok {
			c.bad(path, "got %s, want an integer", describeJSON(v))
			return
		}
		i, err := strconv.ParseInt(n.String(), 10, 64)
		if err != nil {
			if _, ferr := strconv.ParseFloat(n.String(), 64); ferr == nil && !strings.ContainsAny(n.String(), ".eE") {
				c.bad(path, "%s: out of range", n)
			} else {
				c.bad(path, "got number %s, want an integer", n)
			}
			return
		}
		c.checkInt(path, i, s.bits, r)
	case kindFloat:
		if _, ok := v.(json.Number); !ok {
			c.bad(path, "got %s, want a number", describeJSON(v))
		}
	case kindBool:
		if _, ok := v.(bool); !ok {
			c.bad(path, "got %s, want true or false", describeJSON(v))
		}
	case kindTimestamp:
		if _, ok := v.(json.Number); !ok {
			c.bad(path, "got %s, want a timestamp in epoch seconds", describeJSON(v))
		}
	case kindBlob:
		if _, ok := v.(string); !ok {
			c.bad(path, "got %s, want a base64 string", describeJSON(v))
		}
	}
}

func (c *smChecker) checkStruct(obj map[string]any, s *shape, path, norm string) {
	for k, v := range obj {
		p := joinPath(path, k)
		if path == "" {
			if r, ok := extraMembers[k]; ok {
				c.checkString(v, &shape{kind: kindString}, p, r)
				continue
			}
		}
		m, ok := s.members[k]
		if !ok {
			c.bad(p, "unknown member%s", didYouMean(k, s.names))
			continue
		}
		c.check(v, m, p, joinPath(norm, k))
	}
	for _, k := range required[norm] {
		if obj[k] == nil {
			c.bad(joinPath(path, k), "missing: %s requires it", s.name)
		}
	}
}

func (c *smChecker) checkString(v any, s *shape, path string, r rule) {
	str, ok := v.(string)
	if !ok {
		if n, isNum := v.(json.Number); isNum {
			c.bad(path, "got number %s, want a string: quote it (\"%s\")", n, n)
		} else if b, isBool := v.(bool); isBool {
			c.bad(path, "got %t, want a string: quote it (\"%t\")", b, b)
		} else {
			c.bad(path, "got %s, want a string", describeJSON(v))
		}
		return
	}
	if ms := anyVar.FindAllStringSubmatch(str, -1); ms != nil {
		whole := wholeVar.MatchString(str)
		for _, m := range ms {
			c.q.placeholders = append(c.q.placeholders, Placeholder{Name: m[1], Path: path, Whole: whole, kind: s.kind, enum: s.enum})
		}
		return // checked once filled
	}
	if strings.Contains(str, "{{") {
		c.bad(path, "%q: malformed template variable: want {{name}}, name a letter or '_' then letters, digits or '_'", clip(str))
		return
	}
	if t := strings.TrimSpace(str); t == Required || t == "" && readiness[path] {
		if !readiness[path] {
			c.bad(path, "still %s: fill it in", Required)
		}
		return // reported by Missing
	}
	if strings.Contains(str, "${") {
		return // a macro, expanded and checked at submission
	}
	if s.kind == kindEnum {
		if !slices.Contains(s.enum, str) {
			if len(s.enum) <= 12 {
				c.bad(path, "%q: want a %s, one of %s%s", clip(str), s.name, strings.Join(s.enum, ", "), didYouMean(str, s.enum))
			} else {
				c.bad(path, "%q: not a valid %s%s", clip(str), s.name, didYouMean(str, s.enum))
			}
		}
		return
	}
	n := utf8.RuneCountInString(str)
	switch {
	case n < r.minLen:
		c.bad(path, "%q: want at least %d character%s", clip(str), r.minLen, plural(r.minLen))
	case r.maxLen > 0 && n > r.maxLen:
		c.bad(path, "%d characters: want at most %d", n, r.maxLen)
	case r.pattern != nil && !r.pattern.MatchString(str):
		if r.desc != "" {
			c.bad(path, "%q: want %s, matching %s", clip(str), r.desc, r.pattern)
		} else {
			c.bad(path, "%q: want a match for %s", clip(str), r.pattern)
		}
	}
}

func (c *smChecker) checkCount(path string, n int, r rule, unit string) {
	units := unit + "s"
	if unit == "entry" {
		units = "entries"
	}
	switch {
	case n < r.minLen:
		u := units
		if r.minLen == 1 {
			u = unit
		}
		c.bad(path, "%d %s: want at least %d %s", n, units, r.minLen, u)
	case r.maxLen > 0 && n > r.maxLen:
		c.bad(path, "%d %s: want at most %d", n, units, r.maxLen)
	}
}

func (c *smChecker) checkInt(path string, i int64, bits int, r rule) {
	lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
	if bits == 32 {
		lo, hi = math.MinInt32, math.MaxInt32
	}
	if r.min != 0 || r.max != 0 {
		lo, hi = max(lo, r.min), min(hi, r.max)
	}
	switch {
	case len(r.oneOf) > 0 && !slices.Contains(r.oneOf, i):
		var s []string
		for _, o := range r.oneOf {
			s = append(s, strconv.FormatInt(o, 10))
		}
		c.bad(path, "%d: want one of %s", i, strings.Join(s, ", "))
	case i < lo:
		c.bad(path, "%d: want at least %d", i, lo)
	case i > hi:
		c.bad(path, "%d: want at most %d", i, hi)
	}
}

// crossChecks applies the rules that tie two members together.
func (c *smChecker) crossChecks(obj map[string]any) {
	sc, _ := obj["StoppingCondition"].(map[string]any)
	wait, waitOK := intMember(sc, "MaxWaitTimeInSeconds")
	run, runOK := intMember(sc, "MaxRuntimeInSeconds")
	if spot, _ := obj["EnableManagedSpotTraining"].(bool); spot && sc["MaxWaitTimeInSeconds"] == nil {
		c.bad("StoppingCondition.MaxWaitTimeInSeconds", "missing: managed spot training (EnableManagedSpotTraining) requires it")
	}
	if waitOK && runOK && wait < run {
		c.bad("StoppingCondition.MaxWaitTimeInSeconds", "%d: want at least StoppingCondition.MaxRuntimeInSeconds (%d)", wait, run)
	}
	rc, _ := obj["ResourceConfig"].(map[string]any)
	if rc["InstanceGroups"] != nil && (rc["InstanceType"] != nil || rc["InstanceCount"] != nil) {
		c.bad("ResourceConfig.InstanceGroups", "set either InstanceGroups or InstanceType and InstanceCount, not both")
	}
	channels, _ := obj["InputDataConfig"].([]any)
	names := map[string]bool{}
	for i, ch := range channels {
		m, _ := ch.(map[string]any)
		if name, ok := m["ChannelName"].(string); ok {
			if names[name] {
				c.bad(indexPath("InputDataConfig", i)+".ChannelName", "%q: channel names must be unique", clip(name))
			}
			names[name] = true
		}
		if ds, ok := m["DataSource"].(map[string]any); ok {
			n := 0
			for _, v := range ds {
				if v != nil {
					n++
				}
			}
			if n != 1 {
				c.bad(indexPath("InputDataConfig", i)+".DataSource", "want exactly one of S3DataSource, FileSystemDataSource or DatasetSource")
			}
		}
	}
}

func intMember(m map[string]any, k string) (int64, bool) {
	n, ok := m[k].(json.Number)
	if !ok {
		return 0, false
	}
	i, err := n.Int64()
	return i, err == nil
}

// describeJSON names a decoded JSON value for "got X, want Y" messages.
func describeJSON(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case string:
		return fmt.Sprintf("string %q", clip(x))
	case json.Number:
		return "number " + x.String()
	case bool:
		return strconv.FormatBool(x)
	}
	return fmt.Sprintf("%T", v)
}

// clip shortens long values quoted in messages.
func clip(s string) string {
	if len(s) <= 80 {
		return s
	}
	cut := 80
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

package config

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/slipway-ml/slipway/internal/job"
)

// VarType is the type of a template variable.
type VarType string

// The template variable types.
const (
	Int    VarType = "int"
	Float  VarType = "float"
	String VarType = "string"
	Bool   VarType = "bool"
)

// Var declares one {{name}} template variable of a queue config, filled at
// enqueue. Its spec reads name:type[:min:max|:enum=a,b][=default], e.g.
// "n:int:1:8=1", "instance_type:string:enum=ml.m5.xlarge,ml.g5.xlarge",
// "lr:float:0:1=0.001", "spot:bool=false"; either bound of min:max may be
// left empty.
type Var struct {
	Name       string
	Type       VarType
	Min, Max   *float64 // int and float only; nil when unbounded
	Enum       []string // allowed values; empty for any
	Default    string
	HasDefault bool
}

var varName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// ParseVar parses a variable spec; errors name the spec and wrap
// job.ErrInvalid.
func ParseVar(spec string) (Var, error) {
	v, err := parseVar(spec)
	if err != nil {
		return Var{}, fmt.Errorf("%w: template variable spec %q: %s", job.ErrInvalid, clip(spec), err.Error())
	}
	return v, nil
}

func parseVar(spec string) (Var, error) {
	name, rest, ok := strings.Cut(spec, ":")
	if !ok {
		return Var{}, fmt.Errorf("want name:type[:min:max|:enum=a,b][=default]")
	}
	if !varName.MatchString(name) {
		return Var{}, fmt.Errorf("name %q: want a letter or '_' then letters, digits or '_'", clip(name))
	}
	v := Var{Name: name}
	end := strings.IndexAny(rest, ":=")
	if end < 0 {
		end = len(rest)
	}
	switch t := VarType(rest[:end]); t {
	case Int, Float, String, Bool:
		v.Type = t
	default:
		return Var{}, fmt.Errorf("type %q: want int, float, string or bool", clip(string(t)))
	}
	rest = rest[end:]
	if strings.HasPrefix(rest, ":") {
		rest = rest[1:]
		enum, isEnum := strings.CutPrefix(rest, "enum=")
		if isEnum {
			rest = enum
		}
		// The constraint runs to the '=' that starts the default.
		cons := rest
		if i := strings.IndexByte(rest, '='); i >= 0 {
			cons, rest = rest[:i], rest[i:]
		} else {
			rest = ""
		}
		if isEnum {
			if v.Type == Bool {
				return Var{}, fmt.Errorf("enum: a bool variable takes no enum")
			}
			for _, e := range strings.Split(cons, ",") {
				if e == "" {
					return Var{}, fmt.Errorf("enum %q: want non-empty values separated by ','", clip(cons))
				}
				if err := v.checkType(e); err != nil {
					return Var{}, fmt.Errorf("enum value %q: %s", clip(e), err.Error())
				}
				if slices.Contains(v.Enum, e) {
					return Var{}, fmt.Errorf("enum value %q listed twice", clip(e))
				}
				v.Enum = append(v.Enum, e)
			}
		} else {
			if v.Type != Int && v.Type != Float {
				return Var{}, fmt.Errorf("min:max: only int and float variables take a range")
			}
			lo, hi, ok := strings.Cut(cons, ":")
			if !ok {
				return Var{}, fmt.Errorf("range %q: want min:max", clip(cons))
			}
			var err error
			if v.Min, err = v.bound(lo); err != nil {
				return Var{}, fmt.Errorf("min %q: %s", clip(lo), err.Error())
			}
			if v.Max, err = v.bound(hi); err != nil {
				return Var{}, fmt.Errorf("max %q: %s", clip(hi), err.Error())
			}
			if v.Min != nil && v.Max != nil && *v.Min > *v.Max {
				return Var{}, fmt.Errorf("range %q: min is above max", clip(cons))
			}
		}
	}
	if rest != "" {
		def, ok := strings.CutPrefix(rest, "=")
		if !ok {
			return Var{}, fmt.Errorf("%q after the type: want :min:max, :enum=a,b or =default", clip(rest))
		}
		if err := v.Check(def); err != nil {
			return Var{}, fmt.Errorf("default: %s", strings.TrimPrefix(err.Error(), job.ErrInvalid.Error()+": variable "+v.Name+": "))
		}
		v.Default, v.HasDefault = def, true
	}
	return v, nil
}

func (v Var) bound(s string) (*float64, error) {
	if s == "" {
		return nil, nil
	}
	if err := v.checkType(s); err != nil {
		return nil, err
	}
	f, _ := strconv.ParseFloat(s, 64)
	return &f, nil
}

// checkType checks that s reads as a value of v's type.
func (v Var) checkType(s string) error {
	switch v.Type {
	case Int:
		if _, err := strconv.ParseInt(s, 10, 64); err != nil {
			return fmt.Errorf("want an integer")
		}
	case Float:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return fmt.Errorf("want a number")
		}
	case Bool:
		if s != "true" && s != "false" {
			return fmt.Errorf("want true or false")
		}
	}
	return nil
}

// Check reports whether s is an allowed value of v; the error names the
// variable and wraps job.ErrInvalid.
func (v Var) Check(s string) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: variable %s: %q: %s", job.ErrInvalid, v.Name, clip(s), fmt.Sprintf(format, args...))
	}
	if err := v.checkType(s); err != nil {
		return fail("%s", err.Error())
	}
	if len(v.Enum) > 0 && !slices.Contains(v.Enum, s) {
		return fail("want one of %s%s", strings.Join(v.Enum, ", "), didYouMean(s, v.Enum))
	}
	if v.Type == Int || v.Type == Float {
		f, _ := strconv.ParseFloat(s, 64)
		if v.Min != nil && f < *v.Min {
			return fail("want at least %s", strconv.FormatFloat(*v.Min, 'g', -1, 64))
		}
		if v.Max != nil && f > *v.Max {
			return fail("want at most %s", strconv.FormatFloat(*v.Max, 'g', -1, 64))
		}
	}
	return nil
}

// String writes v back as a spec that ParseVar reads.
func (v Var) String() string {
	var b strings.Builder
	b.WriteString(v.Name + ":" + string(v.Type))
	if len(v.Enum) > 0 {
		b.WriteString(":enum=" + strings.Join(v.Enum, ","))
	} else if v.Min != nil || v.Max != nil {
		b.WriteString(":")
		if v.Min != nil {
			b.WriteString(strconv.FormatFloat(*v.Min, 'g', -1, 64))
		}
		b.WriteString(":")
		if v.Max != nil {
			b.WriteString(strconv.FormatFloat(*v.Max, 'g', -1, 64))
		}
	}
	if v.HasDefault {
		b.WriteString("=" + v.Default)
	}
	return b.String()
}

// ParseVars parses several specs; a name declared twice is an error.
func ParseVars(specs []string) ([]Var, error) {
	vars := make([]Var, 0, len(specs))
	seen := map[string]bool{}
	for _, s := range specs {
		v, err := ParseVar(s)
		if err != nil {
			return nil, err
		}
		if seen[v.Name] {
			return nil, fmt.Errorf("%w: template variable %s declared twice", job.ErrInvalid, v.Name)
		}
		seen[v.Name] = true
		vars = append(vars, v)
	}
	return vars, nil
}

// CheckVars checks the queue's placeholders against declared variables:
// each is declared, and a placeholder standing for a whole non-string
// value has a variable of a type that fits there.
func (q *SageMakerQueue) CheckVars(vars []Var) Errors {
	byName := map[string]Var{}
	for _, v := range vars {
		byName[v.Name] = v
	}
	var errs Errors
	for _, p := range q.placeholders {
		v, ok := byName[p.Name]
		if !ok {
			errs = append(errs, FieldError{Path: p.Path, Msg: fmt.Sprintf("template variable {{%s}} is not declared%s",
				p.Name, didYouMean(p.Name, slices.Sorted(maps.Keys(byName))))})
			continue
		}
		if !p.Whole {
			continue
		}
		want := map[shapeKind][]VarType{kindInt: {Int}, kindFloat: {Int, Float}, kindBool: {Bool}, kindTimestamp: {Int, Float}}[p.kind]
		if want != nil && !slices.Contains(want, v.Type) {
			errs = append(errs, FieldError{Path: p.Path, Msg: fmt.Sprintf("template variable {{%s}} is a %s, want %s", p.Name, v.Type, want[0])})
		}
		if p.kind == kindStruct || p.kind == kindList || p.kind == kindMap {
			errs = append(errs, FieldError{Path: p.Path, Msg: fmt.Sprintf("template variable {{%s}} cannot stand for a whole object or list", p.Name)})
		}
		if p.kind == kindEnum {
			for _, e := range v.Enum {
				if !slices.Contains(p.enum, e) {
					errs = append(errs, FieldError{Path: p.Path, Msg: fmt.Sprintf("template variable {{%s}}: enum value %q is not allowed here", p.Name, e)})
				}
			}
		}
	}
	sortErrors(errs)
	return errs
}

// Fill replaces the {{name}} placeholders in a queue's JSON body with
// values, or the variables' defaults. A placeholder that is a whole string
// becomes a value of the variable's type ("{{n}}" with n:int becomes 4),
// except where the CreateTrainingJob model wants a string (HyperParameters
// values stay "0.001"); one inside a longer string is spliced in as text. Errors name the variable: one not
// declared, without a value or default, or with a value of the wrong type,
// out of range or not in its enum; a value for an undeclared variable is an
// error too. ${...} macros are left as they are. Check the result with
// ValidateSageMakerQueue.
func Fill(body []byte, vars []Var, values map[string]string) ([]byte, error) {
	byName := map[string]Var{}
	for _, v := range vars {
		byName[v.Name] = v
	}
	var errs Errors
	for _, k := range slices.Sorted(maps.Keys(values)) {
		if _, ok := byName[k]; !ok {
			errs = append(errs, FieldError{Path: k, Msg: "no such template variable" + didYouMean(k, slices.Sorted(maps.Keys(byName)))})
		}
	}
	resolved, rejected := map[string]string{}, map[string]bool{}
	for _, v := range vars {
		s, ok := values[v.Name]
		if !ok {
			if !v.HasDefault {
				continue // an error only if the body uses it
			}
			s = v.Default
		}
		if err := v.Check(s); err != nil {
			errs = append(errs, FieldError{Path: v.Name, Msg: strings.TrimPrefix(err.Error(), job.ErrInvalid.Error()+": variable "+v.Name+": ")})
			rejected[v.Name] = true
			continue
		}
		resolved[v.Name] = s
	}
	doc, err := decodeJSON(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", job.ErrInvalid, err)
	}
	f := filler{vars: byName, values: resolved, reported: map[string]bool{}, rejected: rejected}
	doc = f.fill(doc, trainingJobModel())
	errs = append(errs, f.errs...)
	if len(errs) > 0 {
		for i := range errs {
			errs[i].Path = "variable " + errs[i].Path
		}
		return nil, errs.err()
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encoding filled body: %w", err)
	}
	return out, nil
}

type filler struct {
	vars     map[string]Var
	values   map[string]string
	errs     Errors
	reported map[string]bool
	rejected map[string]bool // given a bad value, already reported
}

// fill fills v, whose shape in the request model is s (nil where the
// model does not say).
func (f *filler) fill(v any, s *shape) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			var es *shape
			if s != nil && s.kind == kindStruct {
				es = s.members[k]
			} else if s != nil && s.kind == kindMap {
				es = s.elem
			}
			x[k] = f.fill(e, es)
		}
	case []any:
		for i, e := range x {
			var es *shape
			if s != nil && s.kind == kindList {
				es = s.elem
			}
			x[i] = f.fill(e, es)
		}
	case string:
		textual := s != nil && (s.kind == kindString || s.kind == kindEnum)
		if m := wholeVar.FindStringSubmatch(x); m != nil && !textual {
			s, ok := f.value(m[1])
			if !ok {
				return x
			}
			switch f.vars[m[1]].Type {
			case Int, Float:
				return json.Number(s)
			case Bool:
				return s == "true"
			}
			return s
		}
		return anyVar.ReplaceAllStringFunc(x, func(p string) string {
			s, ok := f.value(anyVar.FindStringSubmatch(p)[1])
			if !ok {
				return p
			}
			return s
		})
	}
	return v
}

func (f *filler) value(name string) (string, bool) {
	if s, ok := f.values[name]; ok {
		return s, true
	}
	if !f.reported[name] {
		f.reported[name] = true
		if _, declared := f.vars[name]; !declared {
			f.errs = append(f.errs, FieldError{Path: name, Msg: "used by the queue config but not declared"})
		} else if !f.rejected[name] {
			f.errs = append(f.errs, FieldError{Path: name, Msg: "no value given and no default"})
		}
	}
	return "", false
}

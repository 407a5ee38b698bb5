package config

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/job"
)

func TestParseVar(t *testing.T) {
	t.Parallel()
	tests := []struct {
		spec, want string // want: the spec written back, or the error
	}{
		{"n:int", "n:int"},
		{"n:int:1:8=2", "n:int:1:8=2"},
		{"n:int:1:", "n:int:1:"},
		{"n:int::8", "n:int::8"},
		{"lr:float:0:1=0.001", "lr:float:0:1=0.001"},
		{"instance_type:string:enum=ml.m5.xlarge,ml.g5.xlarge=ml.g5.xlarge", "instance_type:string:enum=ml.m5.xlarge,ml.g5.xlarge=ml.g5.xlarge"},
		{"size:int:enum=1,2,4", "size:int:enum=1,2,4"},
		{"spot:bool=false", "spot:bool=false"},
		{"out:string=s3://bucket/a=b", "out:string=s3://bucket/a=b"},
		{"empty:string=", "empty:string="},
		{"n", `invalid: template variable spec "n": want name:type[:min:max|:enum=a,b][=default]`},
		{"1n:int", `invalid: template variable spec "1n:int": name "1n": want a letter or '_' then letters, digits or '_'`},
		{"n:integer", `invalid: template variable spec "n:integer": type "integer": want int, float, string or bool`},
		{"n:int:1", `invalid: template variable spec "n:int:1": range "1": want min:max`},
		{"n:int:a:2", `invalid: template variable spec "n:int:a:2": min "a": want an integer`},
		{"n:int:1:x", `invalid: template variable spec "n:int:1:x": max "x": want an integer`},
		{"n:int:5:1", `invalid: template variable spec "n:int:5:1": range "5:1": min is above max`},
		{"n:int:1:8=9", `invalid: template variable spec "n:int:1:8=9": default: "9": want at most 8`},
		{"n:int=x", `invalid: template variable spec "n:int=x": default: "x": want an integer`},
		{"s:string:1:2", `invalid: template variable spec "s:string:1:2": min:max: only int and float variables take a range`},
		{"b:bool:enum=true", `invalid: template variable spec "b:bool:enum=true": enum: a bool variable takes no enum`},
		{"s:string:enum=a,,b", `invalid: template variable spec "s:string:enum=a,,b": enum "a,,b": want non-empty values separated by ','`},
		{"s:string:enum=a,a", `invalid: template variable spec "s:string:enum=a,a": enum value "a" listed twice`},
		{"n:int:enum=1,x", `invalid: template variable spec "n:int:enum=1,x": enum value "x": want an integer`},
		{"s:string:enum=a,b=c", `invalid: template variable spec "s:string:enum=a,b=c": default: "c": want one of a, b`},
		{"b:bool=yes", `invalid: template variable spec "b:bool=yes": default: "yes": want true or false`},
		{"f:float=inf", `invalid: template variable spec "f:float=inf": default: "inf": want a number`},
	}
	for _, tt := range tests {
		v, err := ParseVar(tt.spec)
		got := v.String()
		if err != nil {
			got = err.Error()
			if !errors.Is(err, job.ErrInvalid) {
				t.Errorf("%s: got %v not wrapping job.ErrInvalid", tt.spec, err)
			}
		}
		if got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.spec, got, tt.want)
		}
	}
}

func TestParseVars(t *testing.T) {
	t.Parallel()
	if _, err := ParseVars([]string{"a:int", "a:string"}); err == nil || err.Error() != "invalid: template variable a declared twice" {
		t.Errorf("got %v, want the duplicate named", err)
	}
	vars, err := ParseVars([]string{"a:int", "b:string"})
	if err != nil || len(vars) != 2 {
		t.Errorf("got %v, %v; want two variables", vars, err)
	}
}

const templated = `{"RoleArn": "arn:aws:iam::123456789012:role/SageMakerRole",
 "ResourceConfig": {"InstanceType": "{{instance_type}}", "InstanceCount": "{{n}}", "VolumeSizeInGB": 2},
 "OutputDataConfig": {"S3OutputPath": "s3://my-bucket/{{project}}/out"},
 "EnableManagedSpotTraining": "{{spot}}",
 "HyperParameters": {"lr": "{{lr}}", "run": "${job_id}"},
 "StoppingCondition": {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}}`

func templateVars(t *testing.T) []Var {
	t.Helper()
	vars, err := ParseVars([]string{"instance_type:string:enum=ml.m5.xlarge,ml.g5.xlarge=ml.m5.xlarge",
		"n:int:1:8=1", "project:string", "spot:bool=false", "lr:float:0:1=0.001"})
	if err != nil {
		t.Fatal(err)
	}
	return vars
}

func TestFill(t *testing.T) {
	t.Parallel()
	vars := templateVars(t)
	q, errs := ValidateSageMakerQueue([]byte(templated))
	if errs != nil {
		t.Fatalf("got errors %v, want none", errs)
	}
	if errs := q.CheckVars(vars); errs != nil {
		t.Fatalf("CheckVars: got %v, want none", errs)
	}
	out, err := Fill([]byte(templated), vars, map[string]string{"n": "4", "project": "mnist", "spot": "true"})
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	q, errs = ValidateSageMakerQueue(out)
	if errs != nil {
		t.Fatalf("filled: got errors %v, want none", errs)
	}
	in, err := q.TrainingJobInput()
	if err != nil {
		t.Fatal(err)
	}
	if got := *in.ResourceConfig.InstanceCount; got != 4 {
		t.Errorf("InstanceCount: got %d, want 4", got)
	}
	if got := string(in.ResourceConfig.InstanceType); got != "ml.m5.xlarge" {
		t.Errorf("InstanceType: got %q, want the default ml.m5.xlarge", got)
	}
	if got := *in.OutputDataConfig.S3OutputPath; got != "s3://my-bucket/mnist/out" {
		t.Errorf("S3OutputPath: got %q, want the project spliced in", got)
	}
	if !*in.EnableManagedSpotTraining {
		t.Errorf("EnableManagedSpotTraining: got false, want true")
	}
	if got := in.HyperParameters["lr"]; got != "0.001" {
		t.Errorf("lr: got %q, want the string 0.001", got)
	}
	if got := in.HyperParameters["run"]; got != "${job_id}" {
		t.Errorf("macro: got %q, want it left as it was", got)
	}
}

func TestFillErrors(t *testing.T) {
	t.Parallel()
	vars := templateVars(t)
	tests := []struct {
		name   string
		values map[string]string
		body   string
		want   string
	}{
		{"missing value", map[string]string{}, templated, "variable project: no value given and no default"},
		{"out of range", map[string]string{"project": "p", "n": "9"}, templated, `variable n: "9": want at most 8`},
		{"below range", map[string]string{"project": "p", "n": "0"}, templated, `variable n: "0": want at least 1`},
		{"not an int", map[string]string{"project": "p", "n": "two"}, templated, `variable n: "two": want an integer`},
		{"enum", map[string]string{"project": "p", "instance_type": "ml.m5.xlarg"}, templated,
			`variable instance_type: "ml.m5.xlarg": want one of ml.m5.xlarge, ml.g5.xlarge (did you mean ml.m5.xlarge?)`},
		{"bool", map[string]string{"project": "p", "spot": "yes"}, templated, `variable spot: "yes": want true or false`},
		{"undeclared value", map[string]string{"project": "p", "nn": "1"}, templated, "variable nn: no such template variable (did you mean n?)"},
		{"undeclared in body", map[string]string{"project": "p"}, `{"RoleArn": "{{role}}"}`, "variable role: used by the queue config but not declared"},
		{"bad JSON", nil, `{`, "invalid: invalid JSON: unexpected EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Fill([]byte(tt.body), vars, tt.values)
			if err == nil {
				t.Fatalf("got no error, want %q", tt.want)
			}
			if !errors.Is(err, job.ErrInvalid) {
				t.Errorf("got %v not wrapping job.ErrInvalid", err)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCheckVars(t *testing.T) {
	t.Parallel()
	body := `{"ResourceConfig": {"InstanceType": "{{it}}", "InstanceCount": "{{n}}", "VolumeSizeInGB": "{{size}}"},
		"EnableNetworkIsolation": "{{iso}}", "VpcConfig": "{{vpc}}", "RoleArn": "{{rolee}}"}`
	q, errs := ValidateSageMakerQueue([]byte(body))
	if errs != nil {
		t.Fatalf("got errors %v, want none", errs)
	}
	vars, err := ParseVars([]string{"it:string:enum=ml.m5.xlarge,ml.x9.huge", "n:float", "size:int", "iso:string", "vpc:string", "role:string"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range q.CheckVars(vars) {
		got = append(got, e.Error())
	}
	want := []string{
		"EnableNetworkIsolation: template variable {{iso}} is a string, want bool",
		`ResourceConfig.InstanceCount: template variable {{n}} is a float, want int`,
		`ResourceConfig.InstanceType: template variable {{it}}: enum value "ml.x9.huge" is not allowed here`,
		"RoleArn: template variable {{rolee}} is not declared (did you mean role?)",
		"VpcConfig: template variable {{vpc}} cannot stand for a whole object or list",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// Filling keeps numbers exact, even past float64 precision.
func TestFillKeepsNumbers(t *testing.T) {
	t.Parallel()
	out, err := Fill([]byte(`{"a": 12345678901234567890, "b": "{{x}}"}`), []Var{{Name: "x", Type: Int}}, map[string]string{"x": "9007199254740993"})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	if string(m["a"]) != "12345678901234567890" || string(m["b"]) != "9007199254740993" {
		t.Errorf("got %s, want the numbers unchanged", out)
	}
}

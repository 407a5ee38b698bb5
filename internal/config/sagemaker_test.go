package config

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
)

const (
	testRole = "arn:aws:iam::123456789012:role/SageMakerRole"
	testOut  = "s3://my-bucket/output"
)

// filledDefault is DefaultSageMakerQueue with its <REQUIRED> fields filled.
func filledDefault(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(DefaultSageMakerQueue), &m); err != nil {
		t.Fatal(err)
	}
	m["RoleArn"] = testRole
	m["OutputDataConfig"].(map[string]any)["S3OutputPath"] = testOut
	return m
}

func TestDefaultSageMakerQueue(t *testing.T) {
	t.Parallel()
	q, errs := ValidateSageMakerQueue([]byte(DefaultSageMakerQueue))
	if errs != nil {
		t.Fatalf("got errors %v, want none", errs)
	}
	if got, want := q.Missing(), []string{"RoleArn", "OutputDataConfig.S3OutputPath"}; !slices.Equal(got, want) {
		t.Errorf("Missing: got %v, want %v", got, want)
	}

	b, _ := json.Marshal(filledDefault(t))
	q, errs = ValidateSageMakerQueue(b)
	if errs != nil {
		t.Fatalf("got errors %v, want none", errs)
	}
	if got := q.Missing(); len(got) != 0 {
		t.Errorf("Missing: got %v, want none", got)
	}
	in, err := q.TrainingJobInput()
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	if *in.RoleArn != testRole || string(in.ResourceConfig.InstanceType) != "ml.m4.xlarge" ||
		*in.ResourceConfig.InstanceCount != 1 || *in.StoppingCondition.MaxRuntimeInSeconds != 3600 ||
		*in.OutputDataConfig.S3OutputPath != testOut {
		t.Errorf("got %+v, want the body's values", in)
	}
}

func TestMissing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		body string
		want []string
	}{
		{`{}`, []string{"RoleArn", "OutputDataConfig.S3OutputPath"}},
		{`{"RoleArn": "", "OutputDataConfig": {"S3OutputPath": null}}`, []string{"RoleArn", "OutputDataConfig.S3OutputPath"}},
		{`{"RoleArn": " <REQUIRED> ", "OutputDataConfig": {"S3OutputPath": "s3://b/o"}}`, []string{"RoleArn"}},
		{`{"RoleArn": "{{role}}", "OutputDataConfig": {"S3OutputPath": "s3://b/{{run}}"}}`, nil},
	}
	for _, tt := range tests {
		q, errs := ValidateSageMakerQueue([]byte(tt.body))
		if errs != nil {
			t.Fatalf("%s: got errors %v, want none", tt.body, errs)
		}
		if got := q.Missing(); !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.body, got, tt.want)
		}
	}
}

// A full, realistic body passes: channels, spot, checkpoints, tags, VPC,
// hyperparameters and environment.
func TestSageMakerQueueFull(t *testing.T) {
	t.Parallel()
	body := `{
	  "RoleArn": "arn:aws-cn:iam::123456789012:role/service-role/SM",
	  "EcrRepoName": "team/train",
	  "TrainingJobName": "job-1",
	  "AlgorithmSpecification": {"TrainingInputMode": "FastFile", "TrainingImage": "${image_uri}",
	    "MetricDefinitions": [{"Name": "loss", "Regex": "loss=([0-9.]+)"}],
	    "EnableSageMakerMetricsTimeSeries": true},
	  "HyperParameters": {"lr": "0.001", "epochs": "10"},
	  "Environment": {"WANDB_PROJECT": "p", "_X": "${job_id}"},
	  "InputDataConfig": [{"ChannelName": "train", "CompressionType": "Gzip", "RecordWrapperType": "RecordIO",
	    "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bucket/train",
	      "S3DataDistributionType": "ShardedByS3Key"}}}],
	  "OutputDataConfig": {"S3OutputPath": "https://bucket.s3.amazonaws.com/out", "CompressionType": "NONE"},
	  "ResourceConfig": {"InstanceType": "ml.g5.2xlarge", "InstanceCount": 2, "VolumeSizeInGB": 100, "KeepAlivePeriodInSeconds": 0},
	  "StoppingCondition": {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200},
	  "EnableManagedSpotTraining": true,
	  "CheckpointConfig": {"S3Uri": "s3://bucket/ckpt", "LocalPath": "/opt/ml/checkpoints"},
	  "Tags": [{"Key": "team", "Value": "ml"}],
	  "VpcConfig": {"SecurityGroupIds": ["sg-0123"], "Subnets": ["subnet-1", "subnet-2"]},
	  "RetryStrategy": {"MaximumRetryAttempts": 2},
	  "ProfilerConfig": {"ProfilingIntervalInMilliseconds": 500}
	}`
	q, errs := ValidateSageMakerQueue([]byte(body))
	if errs != nil {
		t.Fatalf("got errors:\n%v\nwant none", errs)
	}
	if got := q.EcrRepoName(); got != "team/train" {
		t.Errorf("EcrRepoName: got %q, want team/train", got)
	}
	in, err := q.TrainingJobInput()
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	if in.HyperParameters["lr"] != "0.001" || string(in.InputDataConfig[0].DataSource.S3DataSource.S3DataType) != "S3Prefix" {
		t.Errorf("got %+v, want the body's values", in)
	}
}

// Every rule, with its exact message.
func TestSageMakerQueueErrors(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 2501)
	tests := []struct {
		name, body string
		want       []string
	}{
		{"unknown member", `{"ResourceConfig": {"InstanceTyp": "ml.m4.xlarge"}}`,
			[]string{"ResourceConfig.InstanceTyp: unknown member (did you mean InstanceType?)"}},
		{"unknown top-level member", `{"Rolearn": "x", "Zzzzzzzz": 1}`,
			[]string{"Rolearn: unknown member (did you mean RoleArn?)", "Zzzzzzzz: unknown member"}},
		{"not JSON", `{"RoleArn": `, []string{"invalid JSON: unexpected EOF"}},
		{"trailing data", `{} {}`, []string{"invalid JSON: data after the top-level value at offset 2"}},
		{"not an object", `[1]`, []string{"got a list, want a JSON object"}},
		{"struct kind", `{"ResourceConfig": "big"}`, []string{`ResourceConfig: got string "big", want an object (ResourceConfig)`}},
		{"list kind", `{"Tags": {"Key": "a"}}`, []string{"Tags: got an object, want a list"}},
		{"map kind", `{"HyperParameters": ["a"]}`, []string{"HyperParameters: got a list, want an object of names to values"}},
		{"int kind", `{"ResourceConfig": {"InstanceCount": "2"}}`, []string{`ResourceConfig.InstanceCount: got string "2", want an integer`}},
		{"fraction", `{"ResourceConfig": {"InstanceCount": 1.5}}`, []string{"ResourceConfig.InstanceCount: got number 1.5, want an integer"}},
		{"int32 range", `{"ResourceConfig": {"VolumeSizeInGB": 2147483648}}`, []string{"ResourceConfig.VolumeSizeInGB: 2147483648: want at most 2147483647"}},
		{"huge int", `{"InputDataConfig": [{"ChannelName": "c", "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/k"}}, "ShuffleConfig": {"Seed": 99999999999999999999}}]}`,
			[]string{"InputDataConfig[0].ShuffleConfig.Seed: 99999999999999999999: out of range"}},
		{"bool kind", `{"EnableManagedSpotTraining": "true"}`, []string{`EnableManagedSpotTraining: got string "true", want true or false`}},
		{"number for string", `{"HyperParameters": {"lr": 0.001, "epochs": 10}}`,
			[]string{`HyperParameters.epochs: got number 10, want a string: quote it ("10")`, `HyperParameters.lr: got number 0.001, want a string: quote it ("0.001")`}},
		{"bool for string", `{"Environment": {"DEBUG": true}}`, []string{`Environment.DEBUG: got true, want a string: quote it ("true")`}},
		{"object for string", `{"RoleArn": {}}`, []string{"RoleArn: got an object, want a string"}},
		{"instance type", `{"ResourceConfig": {"InstanceType": "ml.m4.xlrge"}}`,
			[]string{`ResourceConfig.InstanceType: "ml.m4.xlrge": not a valid TrainingInstanceType (did you mean ml.m4.xlarge?)`}},
		{"input mode", `{"AlgorithmSpecification": {"TrainingInputMode": "file"}}`,
			[]string{`AlgorithmSpecification.TrainingInputMode: "file": want a TrainingInputMode, one of Pipe, File, FastFile (did you mean File?)`}},
		{"s3 data type", `{"InputDataConfig": [{"ChannelName": "c", "DataSource": {"S3DataSource": {"S3DataType": "Prefix", "S3Uri": "s3://b/k"}}}]}`,
			[]string{`InputDataConfig[0].DataSource.S3DataSource.S3DataType: "Prefix": want a S3DataType, one of ManifestFile, S3Prefix, AugmentedManifestFile, Converse (did you mean S3Prefix?)`}},
		{"distribution", `{"InputDataConfig": [{"ChannelName": "c", "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/k", "S3DataDistributionType": "Sharded"}}}]}`,
			[]string{`InputDataConfig[0].DataSource.S3DataSource.S3DataDistributionType: "Sharded": want a S3DataDistribution, one of FullyReplicated, ShardedByS3Key`}},
		{"compression", `{"InputDataConfig": [{"ChannelName": "c", "CompressionType": "gzip", "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/k"}}}]}`,
			[]string{`InputDataConfig[0].CompressionType: "gzip": want a CompressionType, one of None, Gzip (did you mean Gzip?)`}},
		{"record wrapper", `{"InputDataConfig": [{"ChannelName": "c", "RecordWrapperType": "Recordio", "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/k"}}}]}`,
			[]string{`InputDataConfig[0].RecordWrapperType: "Recordio": want a RecordWrapper, one of None, RecordIO (did you mean RecordIO?)`}},
		{"role arn", `{"RoleArn": "arn:aws:iam::123:role/x-long-enough"}`,
			[]string{`RoleArn: "arn:aws:iam::123:role/x-long-enough": want an IAM role ARN (arn:aws:iam::<account>:role/<name>), matching ^arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$`}},
		{"role arn short", `{"RoleArn": "arn"}`, []string{`RoleArn: "arn": want at least 20 characters`}},
		{"s3 uri", `{"OutputDataConfig": {"S3OutputPath": "bucket/out"}}`,
			[]string{`OutputDataConfig.S3OutputPath: "bucket/out": want an S3 URI (s3://bucket/prefix), matching ^(https|s3)://([^/]+)/?(.*)$`}},
		{"training job name", `{"TrainingJobName": "bad_name"}`,
			[]string{`TrainingJobName: "bad_name": want 1-63 letters, digits and single hyphens, matching ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$`}},
		{"training job name long", `{"TrainingJobName": "` + strings.Repeat("a", 64) + `"}`, []string{"TrainingJobName: 64 characters: want at most 63"}},
		{"environment key", `{"Environment": {"1BAD": "x", "bad key": "y"}}`,
			[]string{`Environment.1BAD: key "1BAD": want a match for ^[a-zA-Z_][a-zA-Z0-9_]*$`, `Environment["bad key"]: key "bad key": want a match for ^[a-zA-Z_][a-zA-Z0-9_]*$`}},
		{"environment value", `{"Environment": {"K": "` + strings.Repeat("v", 513) + `"}}`, []string{"Environment.K: 513 characters: want at most 512"}},
		{"hyperparameter value", `{"HyperParameters": {"k": "` + long + `"}}`, []string{"HyperParameters.k: 2501 characters: want at most 2500"}},
		{"hyperparameter key", `{"HyperParameters": {"` + strings.Repeat("k", 257) + `": "v"}}`,
			[]string{`HyperParameters.` + strings.Repeat("k", 257) + `: key of 257 characters: want 0 to 256`}},
		{"hyperparameter count", `{"HyperParameters": ` + manyEntries(101) + `}`, []string{"HyperParameters: 101 entries: want at most 100"}},
		{"environment count", `{"Environment": ` + manyEntries(101) + `}`, []string{"Environment: 101 entries: want at most 100"}},
		{"tags count", `{"Tags": [` + strings.Repeat(`{"Key": "k", "Value": "v"},`, 50) + `{"Key": "k", "Value": "v"}]}`, []string{"Tags: 51 items: want at most 50"}},
		{"tag key", `{"Tags": [{"Key": "a*b", "Value": ""}]}`,
			[]string{`Tags[0].Key: "a*b": want letters, digits, spaces and _.:/=+-@, matching ^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$`}},
		{"tag required", `{"Tags": [{"Value": "v"}]}`, []string{"Tags[0].Key: missing: Tag requires it"}},
		{"instance count", `{"ResourceConfig": {"InstanceCount": 0}}`, []string{"ResourceConfig.InstanceCount: 0: want at least 1"}},
		{"volume size", `{"ResourceConfig": {"VolumeSizeInGB": 0}}`, []string{"ResourceConfig.VolumeSizeInGB: 0: want at least 1"}},
		{"keep alive", `{"ResourceConfig": {"KeepAlivePeriodInSeconds": 3601}}`, []string{"ResourceConfig.KeepAlivePeriodInSeconds: 3601: want at most 3600"}},
		{"max runtime", `{"StoppingCondition": {"MaxRuntimeInSeconds": 0}}`, []string{"StoppingCondition.MaxRuntimeInSeconds: 0: want at least 1"}},
		{"max pending", `{"StoppingCondition": {"MaxPendingTimeInSeconds": 60}}`, []string{"StoppingCondition.MaxPendingTimeInSeconds: 60: want at least 7200"}},
		{"spot wait", `{"EnableManagedSpotTraining": true, "StoppingCondition": {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 1800}}`,
			[]string{"StoppingCondition.MaxWaitTimeInSeconds: 1800: want at least StoppingCondition.MaxRuntimeInSeconds (3600)"}},
		{"spot without wait", `{"EnableManagedSpotTraining": true, "StoppingCondition": {"MaxRuntimeInSeconds": 3600}}`,
			[]string{"StoppingCondition.MaxWaitTimeInSeconds: missing: managed spot training (EnableManagedSpotTraining) requires it"}},
		{"groups and type", `{"ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceGroups": [{"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "InstanceGroupName": "g"}]}}`,
			[]string{"ResourceConfig.InstanceGroups: set either InstanceGroups or InstanceType and InstanceCount, not both"}},
		{"channels", `{"InputDataConfig": []}`, []string{"InputDataConfig: 0 items: want at least 1 item"}},
		{"channel required", `{"InputDataConfig": [{"ChannelName": "train"}]}`, []string{"InputDataConfig[0].DataSource: missing: Channel requires it"}},
		{"channel name", `{"InputDataConfig": [{"ChannelName": "tr ain", "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/k"}}}]}`,
			[]string{`InputDataConfig[0].ChannelName: "tr ain": want letters, digits, '.', '-' and '_', matching ^[A-Za-z0-9\.\-_]+$`}},
		{"channel twice", `{"InputDataConfig": [{"ChannelName": "a", "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/k"}}}, {"ChannelName": "a", "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/k"}}}]}`,
			[]string{`InputDataConfig[1].ChannelName: "a": channel names must be unique`}},
		{"data source one of", `{"InputDataConfig": [{"ChannelName": "a", "DataSource": {}}]}`,
			[]string{"InputDataConfig[0].DataSource: want exactly one of S3DataSource, FileSystemDataSource or DatasetSource"}},
		{"vpc", `{"VpcConfig": {"SecurityGroupIds": [], "Subnets": ["subnet_1"]}}`,
			[]string{"VpcConfig.SecurityGroupIds: 0 items: want at least 1 item", `VpcConfig.Subnets[0]: "subnet_1": want a subnet ID, matching ^[-0-9a-zA-Z]+$`}},
		{"retry", `{"RetryStrategy": {"MaximumRetryAttempts": 31}}`, []string{"RetryStrategy.MaximumRetryAttempts: 31: want at most 30"}},
		{"profiling interval", `{"ProfilerConfig": {"ProfilingIntervalInMilliseconds": 150}}`,
			[]string{"ProfilerConfig.ProfilingIntervalInMilliseconds: 150: want one of 100, 200, 500, 1000, 5000, 60000"}},
		{"ecr repo", `{"EcrRepoName": "My Repo"}`,
			[]string{`EcrRepoName: "My Repo": want an ECR repository name, matching ^$|^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$`}},
		{"ecr repo kind", `{"EcrRepoName": 5}`, []string{`EcrRepoName: got number 5, want a string: quote it ("5")`}},
		{"required elsewhere", `{"CheckpointConfig": {"S3Uri": "<REQUIRED>"}}`, []string{"CheckpointConfig.S3Uri: still <REQUIRED>: fill it in"}},
		{"malformed template", `{"RoleArn": "{{ 1role }}"}`,
			[]string{`RoleArn: "{{ 1role }}": malformed template variable: want {{name}}, name a letter or '_' then letters, digits or '_'`}},
		{"template in object slot", `{"ResourceConfig": {"InstanceCount": "{{n}} nodes"}}`,
			[]string{`ResourceConfig.InstanceCount: got string "{{n}} nodes", want an integer`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, errs := ValidateSageMakerQueue([]byte(tt.body))
			var got []string
			for _, e := range errs {
				got = append(got, e.Error())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}

func manyEntries(n int) string {
	m := map[string]string{}
	for i := range n {
		m["K"+strings.Repeat("x", i%3)+string(rune('a'+i%26))+strings.Repeat("y", i/26)] = "v"
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// All errors come at once, sorted by path with indices by value.
func TestSageMakerQueueErrorsSorted(t *testing.T) {
	t.Parallel()
	body := `{"Tags": [` + strings.Repeat(`{"Key": "k", "Value": "v"},`, 10) + `{"Value": "v"}, {"Value": "v"}],
		"ResourceConfig": {"InstanceCount": 0, "VolumeSizeInGB": 0}, "Bogus": 1, "Another": 2}`
	_, errs := ValidateSageMakerQueue([]byte(body))
	var got []string
	for _, e := range errs {
		got = append(got, e.Path)
	}
	want := []string{"Another", "Bogus", "ResourceConfig.InstanceCount", "ResourceConfig.VolumeSizeInGB", "Tags[10].Key", "Tags[11].Key"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestPlaceholdersAccepted(t *testing.T) {
	t.Parallel()
	body := `{"RoleArn": "{{role}}", "ResourceConfig": {"InstanceType": "{{instance_type}}", "InstanceCount": "{{ n }}",
		"VolumeSizeInGB": 2}, "OutputDataConfig": {"S3OutputPath": "s3://bucket/{{project}}/out"},
		"EnableManagedSpotTraining": "{{spot}}", "StoppingCondition": {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": "{{wait}}"},
		"HyperParameters": {"lr": "{{lr}}"}}`
	q, errs := ValidateSageMakerQueue([]byte(body))
	if errs != nil {
		t.Fatalf("got errors %v, want none", errs)
	}
	var got []string
	for _, p := range q.Placeholders() {
		got = append(got, p.Path+"="+p.Name+map[bool]string{true: "", false: "~"}[p.Whole])
	}
	want := []string{"EnableManagedSpotTraining=spot", "HyperParameters.lr=lr", "OutputDataConfig.S3OutputPath=project~",
		"ResourceConfig.InstanceCount=n", "ResourceConfig.InstanceType=instance_type", "RoleArn=role",
		"StoppingCondition.MaxWaitTimeInSeconds=wait"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if _, err := q.TrainingJobInput(); err == nil || err.Error() != "invalid: EnableManagedSpotTraining: template variable {{spot}} is not filled" {
		t.Errorf("got %v, want the unfilled variable named", err)
	}
}

// The model follows the SDK: a sample of members, nesting and enum values.
func TestModelFromSDK(t *testing.T) {
	t.Parallel()
	m := trainingJobModel()
	rc := m.members["ResourceConfig"]
	if rc == nil || rc.kind != kindStruct || rc.members["InstanceType"].kind != kindEnum {
		t.Fatalf("got ResourceConfig %+v, want a struct with an enum InstanceType", rc)
	}
	if !slices.Contains(rc.members["InstanceType"].enum, "ml.m4.xlarge") {
		t.Errorf("got no ml.m4.xlarge among %d instance types", len(rc.members["InstanceType"].enum))
	}
	if got := m.members["InputDataConfig"].elem.members["DataSource"].members["S3DataSource"].members["S3Uri"].kind; got != kindString {
		t.Errorf("got S3Uri kind %v, want string", got)
	}
	if got := m.members["HyperParameters"]; got.kind != kindMap || got.elem.kind != kindString {
		t.Errorf("got HyperParameters %+v, want a map of strings", got)
	}
	if got := m.members["StoppingCondition"].members["MaxRuntimeInSeconds"]; got.kind != kindInt || got.bits != 32 {
		t.Errorf("got MaxRuntimeInSeconds %+v, want a 32-bit integer", got)
	}
}

// Every hand-written rule and required member names a member the SDK
// model has, so a rename in the SDK fails here rather than going unchecked.
func TestRulesMatchModel(t *testing.T) {
	t.Parallel()
	for p := range rules {
		if lookupNorm(p) == nil {
			t.Errorf("rule %q: no such member in the model", p)
		}
	}
	for p, members := range required {
		s := lookupNorm(p)
		if s == nil || s.kind != kindStruct {
			t.Errorf("required %q: no such struct in the model", p)
			continue
		}
		for _, k := range members {
			if s.members[k] == nil {
				t.Errorf("required %q: no member %s", p, k)
			}
		}
	}
}

// lookupNorm finds the shape at a normalized path.
func lookupNorm(p string) *shape {
	s := trainingJobModel()
	for p != "" {
		switch {
		case strings.HasPrefix(p, "[]"), strings.HasPrefix(p, "{}"):
			if s.elem == nil {
				return nil
			}
			s, p = s.elem, p[2:]
		default:
			p = strings.TrimPrefix(p, ".")
			end := strings.IndexAny(p, ".[{")
			if end < 0 {
				end = len(p)
			}
			s = s.members[p[:end]]
			if s == nil {
				return nil
			}
			p = p[end:]
		}
	}
	return s
}

func TestBodyIsCopied(t *testing.T) {
	t.Parallel()
	b := []byte(DefaultSageMakerQueue)
	q, _ := ValidateSageMakerQueue(b)
	b[0] = 'X'
	if got := q.Body(); !reflect.DeepEqual([]byte(got), []byte(DefaultSageMakerQueue)) {
		t.Errorf("got %s, want the body as given", got)
	}
}

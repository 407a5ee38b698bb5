package config

import (
	"math"
	"regexp"
)

// rule holds what the SDK does not carry about one member of the
// CreateTrainingJob request: SageMaker's documented patterns and limits.
// For strings, minLen and maxLen count characters; for lists, items; for
// maps, entries (and keyMinLen, keyMaxLen, key apply to each key).
type rule struct {
	minLen, maxLen       int // maxLen 0: no limit
	pattern              *regexp.Regexp
	desc                 string // what the pattern means, for messages
	min, max             int64  // numbers
	oneOf                []int64
	keyMinLen, keyMaxLen int
	key                  *regexp.Regexp
}

func str(minLen, maxLen int, pattern, desc string) rule {
	r := rule{minLen: minLen, maxLen: maxLen, desc: desc}
	if pattern != "" {
		r.pattern = regexp.MustCompile(pattern)
	}
	return r
}

func num(lo, hi int64) rule { return rule{min: lo, max: hi} }
func count(lo, hi int) rule { return rule{minLen: lo, maxLen: hi} }
func atLeast(lo int64) rule { return rule{min: lo, max: math.MaxInt64} }
func entries(hi, keyLo, keyHi int, keyPattern string) rule {
	r := rule{maxLen: hi, keyMinLen: keyLo, keyMaxLen: keyHi}
	if keyPattern != "" {
		r.key = regexp.MustCompile(keyPattern)
	}
	return r
}

const (
	s3Pattern  = `^(https|s3)://([^/]+)/?(.*)$`
	kmsPattern = `^[a-zA-Z0-9:/_-]*$`
	tagPattern = `^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$`
	expPattern = `^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,119}$`
	secPattern = `^[-0-9a-zA-Z]+$`
)

var (
	s3URI     = str(0, 1024, s3Pattern, "an S3 URI (s3://bucket/prefix)")
	localPath = str(0, 4096, "", "")
	expName   = str(1, 120, expPattern, "letters, digits and single hyphens")
)

// rules is keyed by the normalized path of a member: list indices read
// "[]" and map values "{}", so one rule covers every item and entry.
var rules = map[string]rule{
	"TrainingJobName": str(1, 63, `^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$`, "1-63 letters, digits and single hyphens"),
	"RoleArn":         str(20, 2048, `^arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$`, "an IAM role ARN (arn:aws:iam::<account>:role/<name>)"),

	"AlgorithmSpecification.TrainingImage":             str(0, 255, "", ""),
	"AlgorithmSpecification.AlgorithmName":             str(1, 170, `^(arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]*:[0-9]{12}:[a-z\-]*/)?[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$`, "an algorithm name or ARN"),
	"AlgorithmSpecification.MetricDefinitions":         count(0, 40),
	"AlgorithmSpecification.MetricDefinitions[].Name":  str(1, 255, "", ""),
	"AlgorithmSpecification.MetricDefinitions[].Regex": str(1, 500, "", ""),
	"AlgorithmSpecification.ContainerEntrypoint":       count(1, 100),
	"AlgorithmSpecification.ContainerEntrypoint[]":     str(0, 256, "", ""),
	"AlgorithmSpecification.ContainerArguments":        count(1, 100),
	"AlgorithmSpecification.ContainerArguments[]":      str(0, 256, "", ""),
	"AlgorithmSpecification.TrainingImageConfig.TrainingRepositoryAuthConfig.TrainingRepositoryCredentialsProviderArn": str(1, 2048, `^arn:[a-zA-Z0-9\-]+:lambda:[a-zA-Z0-9\-]+:[0-9]{12}:function:.*$`, "a Lambda function ARN"),

	"HyperParameters":   entries(100, 0, 256, ""),
	"HyperParameters{}": str(0, 2500, "", ""),
	"Environment":       entries(100, 1, 512, `^[a-zA-Z_][a-zA-Z0-9_]*$`),
	"Environment{}":     str(0, 512, "", ""),

	"InputDataConfig":                                                 count(1, 20),
	"InputDataConfig[].ChannelName":                                   str(1, 64, `^[A-Za-z0-9\.\-_]+$`, "letters, digits, '.', '-' and '_'"),
	"InputDataConfig[].ContentType":                                   str(0, 256, "", ""),
	"InputDataConfig[].DataSource.S3DataSource.S3Uri":                 s3URI,
	"InputDataConfig[].DataSource.S3DataSource.AttributeNames":        count(0, 16),
	"InputDataConfig[].DataSource.S3DataSource.AttributeNames[]":      str(1, 256, "", ""),
	"InputDataConfig[].DataSource.S3DataSource.InstanceGroupNames":    count(0, 5),
	"InputDataConfig[].DataSource.S3DataSource.InstanceGroupNames[]":  str(1, 64, "", ""),
	"InputDataConfig[].DataSource.FileSystemDataSource.FileSystemId":  str(11, 0, "", ""),
	"InputDataConfig[].DataSource.FileSystemDataSource.DirectoryPath": str(0, 4096, "", ""),

	"OutputDataConfig.S3OutputPath": s3URI,
	"OutputDataConfig.KmsKeyId":     str(0, 2048, kmsPattern, "a KMS key ID, alias or ARN"),

	"ResourceConfig.InstanceCount":                      atLeast(1),
	"ResourceConfig.VolumeSizeInGB":                     atLeast(1),
	"ResourceConfig.VolumeKmsKeyId":                     str(0, 2048, kmsPattern, "a KMS key ID, alias or ARN"),
	"ResourceConfig.KeepAlivePeriodInSeconds":           num(0, 3600),
	"ResourceConfig.InstanceGroups":                     count(0, 5),
	"ResourceConfig.InstanceGroups[].InstanceCount":     atLeast(0),
	"ResourceConfig.InstanceGroups[].InstanceGroupName": str(1, 64, "", ""),
	"ResourceConfig.TrainingPlanArn":                    str(1, 2048, `^arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]*:[0-9]{12}:training-plan/.*$`, "a training plan ARN"),

	"StoppingCondition.MaxRuntimeInSeconds":     atLeast(1),
	"StoppingCondition.MaxWaitTimeInSeconds":    atLeast(1),
	"StoppingCondition.MaxPendingTimeInSeconds": num(7200, 2419200),

	"Tags":         count(0, 50),
	"Tags[].Key":   str(1, 128, tagPattern, "letters, digits, spaces and _.:/=+-@"),
	"Tags[].Value": str(0, 256, tagPattern, "letters, digits, spaces and _.:/=+-@"),

	"VpcConfig.SecurityGroupIds":   count(1, 5),
	"VpcConfig.SecurityGroupIds[]": str(0, 32, secPattern, "a security group ID"),
	"VpcConfig.Subnets":            count(1, 16),
	"VpcConfig.Subnets[]":          str(0, 32, secPattern, "a subnet ID"),

	"CheckpointConfig.S3Uri":     s3URI,
	"CheckpointConfig.LocalPath": localPath,

	"DebugHookConfig.S3OutputPath":                                      s3URI,
	"DebugHookConfig.LocalPath":                                         localPath,
	"DebugHookConfig.HookParameters":                                    entries(20, 1, 256, ""),
	"DebugHookConfig.HookParameters{}":                                  str(0, 256, "", ""),
	"DebugHookConfig.CollectionConfigurations":                          count(0, 20),
	"DebugHookConfig.CollectionConfigurations[].CollectionName":         str(1, 256, "", ""),
	"DebugHookConfig.CollectionConfigurations[].CollectionParameters":   entries(20, 1, 256, ""),
	"DebugHookConfig.CollectionConfigurations[].CollectionParameters{}": str(0, 256, "", ""),

	"ProfilerConfig.S3OutputPath":                    s3URI,
	"ProfilerConfig.ProfilingIntervalInMilliseconds": {oneOf: []int64{100, 200, 500, 1000, 5000, 60000}},
	"ProfilerConfig.ProfilingParameters":             entries(20, 1, 256, ""),
	"ProfilerConfig.ProfilingParameters{}":           str(0, 256, "", ""),

	"TensorBoardOutputConfig.S3OutputPath": s3URI,
	"TensorBoardOutputConfig.LocalPath":    localPath,

	"ExperimentConfig.ExperimentName":            expName,
	"ExperimentConfig.TrialName":                 expName,
	"ExperimentConfig.RunName":                   expName,
	"ExperimentConfig.TrialComponentDisplayName": expName,

	"RetryStrategy.MaximumRetryAttempts": num(1, 30),
}

func init() {
	// Debugger and profiler rule configurations share their limits.
	for _, p := range []string{"DebugRuleConfigurations", "ProfilerRuleConfigurations"} {
		rules[p] = count(0, 20)
		rules[p+"[].RuleConfigurationName"] = str(1, 256, "", "")
		rules[p+"[].RuleEvaluatorImage"] = str(0, 255, "", "")
		rules[p+"[].RuleParameters"] = entries(100, 1, 256, "")
		rules[p+"[].RuleParameters{}"] = str(0, 256, "", "")
		rules[p+"[].S3OutputPath"] = s3URI
		rules[p+"[].LocalPath"] = localPath
		rules[p+"[].VolumeSizeInGB"] = atLeast(0)
	}
}

// required lists, by normalized path of a struct, the members SageMaker
// requires whenever that struct is present. The request's own required
// members (TrainingJobName, AlgorithmSpecification, RoleArn,
// OutputDataConfig) are not here: the agent fills the first two, and the
// others are readiness, reported by SageMakerQueue.Missing.
// AlgorithmSpecification.TrainingInputMode is left out too: the agent
// defaults it to File.
var required = map[string][]string{
	"AlgorithmSpecification.MetricDefinitions[]":                              {"Name", "Regex"},
	"AlgorithmSpecification.TrainingImageConfig":                              {"TrainingRepositoryAccessMode"},
	"AlgorithmSpecification.TrainingImageConfig.TrainingRepositoryAuthConfig": {"TrainingRepositoryCredentialsProviderArn"},
	"InputDataConfig[]":                                                {"ChannelName", "DataSource"},
	"InputDataConfig[].DataSource.S3DataSource":                        {"S3DataType", "S3Uri"},
	"InputDataConfig[].DataSource.S3DataSource.HubAccessConfig":        {"HubContentArn"},
	"InputDataConfig[].DataSource.S3DataSource.ModelAccessConfig":      {"AcceptEula"},
	"InputDataConfig[].DataSource.FileSystemDataSource":                {"FileSystemId", "FileSystemAccessMode", "FileSystemType", "DirectoryPath"},
	"InputDataConfig[].ShuffleConfig":                                  {"Seed"},
	"ResourceConfig.InstanceGroups[]":                                  {"InstanceType", "InstanceCount", "InstanceGroupName"},
	"ResourceConfig.InstancePreferences[]":                             {"InstanceType"},
	"ResourceConfig.InstancePlacementConfig.PlacementSpecifications[]": {"InstanceCount"},
	"VpcConfig":                    {"SecurityGroupIds", "Subnets"},
	"Tags[]":                       {"Key", "Value"},
	"CheckpointConfig":             {"S3Uri"},
	"TensorBoardOutputConfig":      {"S3OutputPath"},
	"DebugRuleConfigurations[]":    {"RuleConfigurationName", "RuleEvaluatorImage"},
	"ProfilerRuleConfigurations[]": {"RuleConfigurationName", "RuleEvaluatorImage"},
	"RetryStrategy":                {"MaximumRetryAttempts"},
	"ServerlessJobConfig":          {"BaseModelArn", "JobType"},
	"MlflowConfig":                 {"MlflowResourceArn"},
	"ModelPackageConfig":           {"ModelPackageGroupArn"},
}

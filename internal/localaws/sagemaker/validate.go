package sagemaker

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/slipway-ml/slipway/internal/localaws/awsjson"
)

var (
	namePattern     = regexp.MustCompile(`^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$`)
	rolePattern     = regexp.MustCompile(`^arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$`)
	s3Pattern       = regexp.MustCompile(`^(https|s3)://([^/]+)/?(.*)$`)
	envKeyPattern   = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	channelPattern  = regexp.MustCompile(`^[A-Za-z0-9\.\-_]+$`)
	instancePattern = regexp.MustCompile(`^ml\.[a-z0-9-]+\.[a-z0-9]+$`)
)

// validator gathers constraint violations in the wording SageMaker uses:
// "N validation errors detected: Value 'x' at 'path' failed to satisfy
// constraint: ...".
type validator struct{ errs []string }

func (v *validator) failf(value any, path, format string, args ...any) {
	v.errs = append(v.errs, fmt.Sprintf("Value '%v' at '%s' failed to satisfy constraint: %s", value, path, fmt.Sprintf(format, args...)))
}

func (v *validator) required(ok bool, path string) {
	if !ok {
		v.failf("null", path, "Member must not be null")
	}
}

func (v *validator) enum(value, path string, allowed ...string) {
	if value == "" {
		return
	}
	for _, a := range allowed {
		if value == a {
			return
		}
	}
	v.failf(value, path, "Member must satisfy enum value set: [%s]", strings.Join(allowed, ", "))
}

func (v *validator) length(value, path string, lo, hi int) {
	if n := len(value); n < lo || n > hi {
		v.failf(value, path, "Member must have length between %d and %d", lo, hi)
	}
}

func (v *validator) pattern(value, path string, re *regexp.Regexp) {
	if !re.MatchString(value) {
		v.failf(value, path, "Member must satisfy regular expression pattern: %s", re)
	}
}

func (v *validator) err() error {
	switch len(v.errs) {
	case 0:
		return nil
	case 1:
		return awsjson.Validation("1 validation error detected: %s", v.errs[0])
	}
	return awsjson.Validation("%d validation errors detected: %s", len(v.errs), strings.Join(v.errs, "; "))
}

// Limits bounds what one job may ask of the local engine.
type Limits struct {
	MaxInstanceCount int // instances per job
}

// Validate checks a CreateTrainingJob request as the service does, plus
// what this endpoint cannot run (Pipe mode, algorithm resources, non-S3
// channels), which it rejects with a ValidationException that says so.
func Validate(req *CreateRequest, lim Limits) error {
	var v validator
	if !namePattern.MatchString(req.TrainingJobName) {
		v.failf(req.TrainingJobName, "trainingJobName", "Member must satisfy regular expression pattern: %s", namePattern)
	}
	v.required(req.RoleArn != "", "roleArn")
	if req.RoleArn != "" {
		v.length(req.RoleArn, "roleArn", 20, 2048)
		v.pattern(req.RoleArn, "roleArn", rolePattern)
	}
	validateAlgorithm(&v, req.AlgorithmSpecification)
	v.required(req.OutputDataConfig != nil, "outputDataConfig")
	if o := req.OutputDataConfig; o != nil {
		v.pattern(o.S3OutputPath, "outputDataConfig.s3OutputPath", s3Pattern)
		v.enum(o.CompressionType, "outputDataConfig.compressionType", "GZIP", "NONE")
	}
	validateResources(&v, req.ResourceConfig, lim)
	validateStopping(&v, req)
	validateChannels(&v, req.InputDataConfig)
	validateMaps(&v, req)
	if c := req.CheckpointConfig; c != nil {
		v.pattern(c.S3URI, "checkpointConfig.s3Uri", s3Pattern)
		if c.LocalPath != "" && !strings.HasPrefix(c.LocalPath, "/") {
			v.failf(c.LocalPath, "checkpointConfig.localPath", "Member must be an absolute path")
		}
	}
	return v.err()
}

func validateAlgorithm(v *validator, a *AlgorithmSpecification) {
	v.required(a != nil, "algorithmSpecification")
	if a == nil {
		return
	}
	v.required(a.TrainingInputMode != "", "algorithmSpecification.trainingInputMode")
	v.enum(a.TrainingInputMode, "algorithmSpecification.trainingInputMode", "Pipe", "File", "FastFile")
	if a.AlgorithmName != "" {
		v.failf(a.AlgorithmName, "algorithmSpecification.algorithmName", "algorithm resources are not served by the local endpoint; give a TrainingImage")
	}
	v.required(a.TrainingImage != "" || a.AlgorithmName != "", "algorithmSpecification.trainingImage")
	if len(a.TrainingImage) > 255 {
		v.length(a.TrainingImage, "algorithmSpecification.trainingImage", 0, 255)
	}
	if a.TrainingInputMode == "Pipe" {
		v.failf("Pipe", "algorithmSpecification.trainingInputMode", "Pipe mode is not served by the local endpoint; use File or FastFile")
	}
	if len(a.ContainerEntrypoint) > 100 {
		v.failf(len(a.ContainerEntrypoint), "algorithmSpecification.containerEntrypoint", "Member must have length less than or equal to 100")
	}
	if len(a.ContainerArguments) > 100 {
		v.failf(len(a.ContainerArguments), "algorithmSpecification.containerArguments", "Member must have length less than or equal to 100")
	}
	for i, s := range a.ContainerEntrypoint {
		v.length(s, fmt.Sprintf("algorithmSpecification.containerEntrypoint.%d", i+1), 1, 256)
	}
	for i, s := range a.ContainerArguments {
		v.length(s, fmt.Sprintf("algorithmSpecification.containerArguments.%d", i+1), 1, 256)
	}
}

func validateResources(v *validator, r *ResourceConfig, lim Limits) {
	v.required(r != nil, "resourceConfig")
	if r == nil {
		return
	}
	v.required(r.InstanceType != "", "resourceConfig.instanceType")
	if r.InstanceType != "" {
		v.pattern(r.InstanceType, "resourceConfig.instanceType", instancePattern)
	}
	if r.InstanceCount < 1 {
		v.failf(r.InstanceCount, "resourceConfig.instanceCount", "Member must have value greater than or equal to 1")
	} else if lim.MaxInstanceCount > 0 && r.InstanceCount > lim.MaxInstanceCount {
		v.failf(r.InstanceCount, "resourceConfig.instanceCount",
			"the local endpoint runs at most %d instances per job on this Docker engine", lim.MaxInstanceCount)
	}
	if r.VolumeSizeInGB < 1 {
		v.failf(r.VolumeSizeInGB, "resourceConfig.volumeSizeInGB", "Member must have value greater than or equal to 1")
	}
}

func validateStopping(v *validator, req *CreateRequest) {
	s := req.StoppingCondition
	v.required(s != nil, "stoppingCondition")
	if s == nil {
		return
	}
	if s.MaxRuntimeInSeconds < 0 || s.MaxRuntimeInSeconds == 0 && req.EnableManagedSpotTraining {
		v.failf(s.MaxRuntimeInSeconds, "stoppingCondition.maxRuntimeInSeconds", "Member must have value greater than or equal to 1")
	}
	if s.MaxWaitTimeInSeconds < 0 {
		v.failf(s.MaxWaitTimeInSeconds, "stoppingCondition.maxWaitTimeInSeconds", "Member must have value greater than or equal to 1")
	}
	switch {
	case req.EnableManagedSpotTraining && s.MaxWaitTimeInSeconds == 0:
		v.failf("null", "stoppingCondition.maxWaitTimeInSeconds", "Member must not be null when EnableManagedSpotTraining is true")
	case !req.EnableManagedSpotTraining && s.MaxWaitTimeInSeconds != 0:
		v.failf(s.MaxWaitTimeInSeconds, "stoppingCondition.maxWaitTimeInSeconds", "MaxWaitTimeInSeconds is only allowed when EnableManagedSpotTraining is true")
	case req.EnableManagedSpotTraining && s.MaxWaitTimeInSeconds < s.MaxRuntimeInSeconds:
		v.failf(s.MaxWaitTimeInSeconds, "stoppingCondition.maxWaitTimeInSeconds",
			"MaxWaitTimeInSeconds must be greater than or equal to MaxRuntimeInSeconds (%d)", s.MaxRuntimeInSeconds)
	}
}

func validateChannels(v *validator, chans []Channel) {
	if len(chans) > 20 {
		v.failf(len(chans), "inputDataConfig", "Member must have length less than or equal to 20")
	}
	seen := map[string]bool{}
	for i, c := range chans {
		p := fmt.Sprintf("inputDataConfig.%d.member", i+1)
		v.length(c.ChannelName, p+".channelName", 1, 64)
		if c.ChannelName != "" {
			v.pattern(c.ChannelName, p+".channelName", channelPattern)
		}
		if seen[c.ChannelName] {
			v.failf(c.ChannelName, p+".channelName", "Channel names must be unique")
		}
		seen[c.ChannelName] = true
		v.enum(c.CompressionType, p+".compressionType", "None", "Gzip")
		v.enum(c.RecordWrapperType, p+".recordWrapperType", "None", "RecordIO")
		v.enum(c.InputMode, p+".inputMode", "Pipe", "File", "FastFile")
		if c.InputMode == "Pipe" {
			v.failf("Pipe", p+".inputMode", "Pipe mode is not served by the local endpoint; use File or FastFile")
		}
		v.required(c.DataSource != nil && c.DataSource.S3DataSource != nil, p+".dataSource.s3DataSource")
		if c.DataSource == nil || c.DataSource.S3DataSource == nil {
			continue
		}
		s := c.DataSource.S3DataSource
		v.required(s.S3DataType != "", p+".dataSource.s3DataSource.s3DataType")
		v.enum(s.S3DataType, p+".dataSource.s3DataSource.s3DataType", "ManifestFile", "S3Prefix", "AugmentedManifestFile")
		if s.S3DataType != "" && s.S3DataType != "S3Prefix" {
			v.failf(s.S3DataType, p+".dataSource.s3DataSource.s3DataType", "only S3Prefix is served by the local endpoint")
		}
		v.pattern(s.S3URI, p+".dataSource.s3DataSource.s3Uri", s3Pattern)
		v.enum(s.S3DataDistributionType, p+".dataSource.s3DataSource.s3DataDistributionType", "FullyReplicated", "ShardedByS3Key")
	}
}

func validateMaps(v *validator, req *CreateRequest) {
	if len(req.HyperParameters) > 100 {
		v.failf(len(req.HyperParameters), "hyperParameters", "Member must have length less than or equal to 100")
	}
	for _, k := range sortedKeys(req.HyperParameters) {
		v.length(k, "hyperParameters."+k+".key", 0, 256)
		v.length(req.HyperParameters[k], "hyperParameters."+k+".value", 0, 2500)
	}
	if len(req.Environment) > 100 {
		v.failf(len(req.Environment), "environment", "Member must have length less than or equal to 100")
	}
	for _, k := range sortedKeys(req.Environment) {
		v.length(k, "environment.key", 1, 512)
		v.pattern(k, "environment.key", envKeyPattern)
		v.length(req.Environment[k], "environment."+k+".value", 0, 512)
	}
	if len(req.Tags) > 50 {
		v.failf(len(req.Tags), "tags", "Member must have length less than or equal to 50")
	}
	for i, t := range req.Tags {
		v.length(t.Key, fmt.Sprintf("tags.%d.member.key", i+1), 1, 128)
		v.length(t.Value, fmt.Sprintf("tags.%d.member.value", i+1), 0, 256)
	}
}

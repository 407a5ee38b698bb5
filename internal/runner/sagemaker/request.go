package sagemaker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/service/sagemaker"

	"github.com/slipway-ml/slipway/internal/config"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/runner"
)

// Tag keys set on every training job; with the matching environment
// variables they prove, after a ResourceInUse, that a job is ours.
const (
	TagJobID   = "slipway:job-id"
	TagQueue   = "slipway:queue"
	TagAttempt = "slipway:attempt"
)

// Request is a CreateTrainingJob request built for one job attempt.
type Request struct {
	// Input is what Start sends.
	Input *sagemaker.CreateTrainingJobInput
	// JSON is the same request as the CreateTrainingJob JSON body, indented,
	// for `launch --dry-run`.
	JSON json.RawMessage
	// EcrRepoName is the queue's EcrRepoName (removed from the request): the
	// repository a built image is pushed to. Empty when unset.
	EcrRepoName string
	// Checks names the checks the request passed, for a dry run.
	Checks []string
	// Notes are things a user should know about the request, such as a
	// run config too long to be passed as an environment variable.
	Notes []string
}

// Limits on what SageMaker accepts in a CreateTrainingJob request; the
// config validator checks them all, these are used for clear messages.
const (
	maxNameLen      = 63
	maxEnvValueLen  = 512
	maxRunConfigEnv = maxEnvValueLen
)

// Macros are the ${...} names a queue config may use, filled per job:
//
//	${job_id}             the job's id
//	${queue}              the queue's name
//	${attempt}            the attempt number (1, 2, ...)
//	${image_uri}          the job's image
//	${training_job_name}  the TrainingJobName of this attempt (not inside TrainingJobName)
//
// Nothing else is expanded: never the agent's environment.
var Macros = []string{"job_id", "queue", "attempt", "image_uri", "training_job_name"}

var (
	macroRef  = regexp.MustCompile(`\$\{([^{}]*)\}`)
	validName = regexp.MustCompile(`^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$`)
	nameJunk  = regexp.MustCompile(`[^a-zA-Z0-9-]+`)
)

// BuildRequest turns a sagemaker queue's config and one job attempt into
// the CreateTrainingJob request to send. The queue body is checked with
// internal/config before and after the job's members are filled in; every
// error wraps job.ErrInvalid and names the member at fault.
//
// The body's ${...} macros (see Macros) are expanded; the TrainingJobName is
// t.Name, or the body's own with "-a<attempt>" appended so that retries do
// not collide; AlgorithmSpecification gets the job's image, entrypoint and
// arguments; the run config becomes HyperParameters (strings, as SageMaker
// delivers them) and SLIPWAY_RUN_CONFIG; the job's env and SLIPWAY_JOB_ID,
// SLIPWAY_QUEUE, SLIPWAY_ATTEMPT go to Environment; Tags get slipway:job-id,
// slipway:queue and slipway:attempt; EcrRepoName is removed.
//
// Before all that, the queue's {{name}} template variables are filled from
// the job's values (launch --set-var) and defaults, and the job's resource
// args (launch --resource-args) are deep-merged over the body.
func BuildRequest(q job.Queue, t runner.Task) (*Request, error) {
	return buildRequest(q, t, t.Job.Spec.ResourceArgs)
}

func buildRequest(q job.Queue, t runner.Task, overrides json.RawMessage) (*Request, error) {
	raw := []byte(q.Config)
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = []byte(config.DefaultSageMakerQueue)
	}
	req := &Request{}
	if len(q.Vars) > 0 || len(t.Job.Spec.Vars) > 0 {
		vars, err := config.ParseVars(q.Vars)
		if err != nil {
			return nil, fmt.Errorf("queue %s: %w", q.Name, err)
		}
		if raw, err = config.Fill(raw, vars, t.Job.Spec.Vars); err != nil {
			return nil, fmt.Errorf("filling queue %s template variables: %w", q.Name, err)
		}
		req.Checks = append(req.Checks, fmt.Sprintf("template variables filled and checked (%d declared)", len(vars)))
	}
	queueCfg, errs := config.ValidateSageMakerQueue(raw)
	if len(errs) > 0 {
		return nil, fmt.Errorf("checking queue %s config: %w", q.Name, errs)
	}
	if ph := queueCfg.Placeholders(); len(ph) > 0 {
		return nil, fmt.Errorf("%w: queue %s config: %s: template variable {{%s}} is not filled", job.ErrInvalid, q.Name, ph[0].Path, ph[0].Name)
	}
	req.Checks = append(req.Checks, "queue config matches the CreateTrainingJob model")
	body, err := decodeObject(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: queue %s config: %v", job.ErrInvalid, q.Name, err)
	}
	if len(overrides) > 0 {
		over, err := decodeObject(overrides)
		if err != nil {
			return nil, fmt.Errorf("%w: resource args: %v", job.ErrInvalid, err)
		}
		body = deepMerge(body, over)
	}
	req.EcrRepoName, _ = body["EcrRepoName"].(string)
	delete(body, "EcrRepoName")

	image := t.Job.Image
	if image == "" {
		image = t.Job.Spec.Image
	}
	vars := map[string]string{
		"job_id":  t.Job.ID,
		"queue":   t.Job.Queue,
		"attempt": strconv.Itoa(t.Job.Attempt),
	}
	if image != "" {
		vars["image_uri"] = image
	}
	name, err := trainingJobName(body, t, vars)
	if err != nil {
		return nil, err
	}
	vars["training_job_name"] = name
	delete(body, "TrainingJobName")
	if err := expandMacros(body, "", vars); err != nil {
		return nil, err
	}
	body["TrainingJobName"] = name
	req.Checks = append(req.Checks, "${...} macros from the allow-list only")

	if err := setAlgorithm(body, t.Job.Spec, image); err != nil {
		return nil, err
	}
	if err := setRunConfig(body, req, t.Job.Spec.RunConfig); err != nil {
		return nil, err
	}
	env := objectMember(body, "Environment")
	for k, v := range t.Job.Spec.Env {
		env[k] = v
	}
	env[runner.EnvJobID] = t.Job.ID
	env[runner.EnvQueue] = t.Job.Queue
	env[runner.EnvAttempt] = strconv.Itoa(t.Job.Attempt)
	if err := setSecretRefs(env, t); err != nil {
		return nil, err
	}
	setTags(body, t)

	if err := checkLimits(body); err != nil {
		return nil, err
	}
	req.Checks = append(req.Checks, "limits: Environment ≤ 100 entries of ≤ 512 characters, HyperParameters ≤ 100 of ≤ 2500, Tags ≤ 50")

	out, err := json.MarshalIndent(body, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding training job request: %w", err)
	}
	final, errs := config.ValidateSageMakerQueue(out)
	if len(errs) == 0 {
		errs = final.Required()
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("checking the training job request: %w", errs)
	}
	if missing := final.Missing(); len(missing) > 0 {
		return nil, fmt.Errorf("%w: queue %s is not ready: fill %s in its config (slipway queue update %s --config ...)",
			job.ErrInvalid, q.Name, strings.Join(missing, " and "), q.Name)
	}
	req.Checks = append(req.Checks, "request matches the CreateTrainingJob model; RoleArn and OutputDataConfig.S3OutputPath set")
	in, err := final.TrainingJobInput()
	if err != nil {
		return nil, fmt.Errorf("building training job input: %w", err)
	}
	req.Input = in
	req.JSON = out
	return req, nil
}

// decodeObject decodes a JSON object keeping numbers exact.
func decodeObject(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, fmt.Errorf("want a JSON object: %v", err)
	}
	if obj == nil {
		return nil, errors.New("want a JSON object, got null")
	}
	return obj, nil
}

// deepMerge merges over into base: objects merge key by key, anything else
// (lists included) is replaced, and a null removes the member.
func deepMerge(base, over map[string]any) map[string]any {
	for k, v := range over {
		if v == nil {
			delete(base, k)
			continue
		}
		if bo, ok := base[k].(map[string]any); ok {
			if oo, ok := v.(map[string]any); ok {
				base[k] = deepMerge(bo, oo)
				continue
			}
		}
		base[k] = v
	}
	return base
}

// trainingJobName returns the body's TrainingJobName (macros expanded, with
// the attempt appended), else t.Name; either way valid for SageMaker.
func trainingJobName(body map[string]any, t runner.Task, vars map[string]string) (string, error) {
	given, ok := body["TrainingJobName"]
	if !ok || given == nil {
		if !validName.MatchString(t.Name) {
			return "", fmt.Errorf("%w: TrainingJobName: task name %q: want 1-63 letters, digits and hyphens", job.ErrInvalid, t.Name)
		}
		return t.Name, nil
	}
	s, ok := given.(string)
	if !ok {
		return "", fmt.Errorf("%w: TrainingJobName: want a string", job.ErrInvalid)
	}
	s, err := expandString(s, "TrainingJobName", vars)
	if err != nil {
		return "", err
	}
	s = strings.Trim(nameJunk.ReplaceAllString(s, "-"), "-")
	suffix := fmt.Sprintf("-a%d", t.Job.Attempt)
	if cut := maxNameLen - len(suffix); len(s) > cut {
		s = strings.TrimRight(s[:cut], "-")
	}
	if s == "" {
		return "", fmt.Errorf("%w: TrainingJobName: %q has no letters or digits", job.ErrInvalid, given)
	}
	return s + suffix, nil
}

// expandMacros expands ${...} in every string of v, in place.
func expandMacros(v any, path string, vars map[string]string) error {
	switch x := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(x)) {
			p := joinPath(path, k)
			if s, ok := x[k].(string); ok {
				e, err := expandString(s, p, vars)
				if err != nil {
					return err
				}
				x[k] = e
				continue
			}
			if err := expandMacros(x[k], p, vars); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range x {
			p := fmt.Sprintf("%s[%d]", path, i)
			if s, ok := e.(string); ok {
				e, err := expandString(s, p, vars)
				if err != nil {
					return err
				}
				x[i] = e
				continue
			}
			if err := expandMacros(e, p, vars); err != nil {
				return err
			}
		}
	}
	return nil
}

// expandString expands the macros of one string at path.
func expandString(s, path string, vars map[string]string) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var bad error
	out := macroRef.ReplaceAllStringFunc(s, func(m string) string {
		name := strings.TrimSpace(m[2 : len(m)-1])
		v, ok := vars[name]
		if !ok && bad == nil {
			switch {
			case slices.Contains(Macros, name):
				bad = fmt.Errorf("%w: %s: macro ${%s} has no value here", job.ErrInvalid, path, name)
			default:
				bad = fmt.Errorf("%w: %s: unknown macro ${%s}: want one of ${%s}", job.ErrInvalid, path, name, strings.Join(Macros, "}, ${"))
			}
		}
		return v
	})
	if bad != nil {
		return "", bad
	}
	if strings.Contains(macroRef.ReplaceAllString(s, ""), "${") {
		return "", fmt.Errorf("%w: %s: malformed macro in %q: want ${name}", job.ErrInvalid, path, s)
	}
	return out, nil
}

func joinPath(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// objectMember returns body[k] as an object, creating it when absent.
func objectMember(body map[string]any, k string) map[string]any {
	m, ok := body[k].(map[string]any)
	if !ok {
		m = map[string]any{}
		body[k] = m
	}
	return m
}

// setAlgorithm puts the job's image, entrypoint and arguments into
// AlgorithmSpecification.
func setAlgorithm(body map[string]any, spec job.Spec, image string) error {
	alg := objectMember(body, "AlgorithmSpecification")
	if image != "" {
		alg["TrainingImage"] = image
		delete(alg, "AlgorithmName")
	}
	if s, _ := alg["TrainingImage"].(string); s == "" {
		if n, _ := alg["AlgorithmName"].(string); n == "" {
			return fmt.Errorf("%w: AlgorithmSpecification.TrainingImage: the job has no image and the queue names none", job.ErrInvalid)
		}
	}
	if alg["TrainingInputMode"] == nil {
		alg["TrainingInputMode"] = "File"
	}
	if len(spec.Entrypoint) > 0 {
		alg["ContainerEntrypoint"] = toAny(spec.Entrypoint)
	}
	if len(spec.Args) > 0 {
		alg["ContainerArguments"] = toAny(spec.Args)
	}
	return nil
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// setRunConfig passes the run config as HyperParameters, every value a
// string, and as SLIPWAY_RUN_CONFIG when it fits SageMaker's 512
// characters per environment value.
func setRunConfig(body map[string]any, req *Request, rc json.RawMessage) error {
	if len(bytes.TrimSpace(rc)) == 0 {
		return nil
	}
	obj, err := decodeObject(rc)
	if err != nil {
		return fmt.Errorf("%w: run config: %v", job.ErrInvalid, err)
	}
	hp := objectMember(body, "HyperParameters")
	for k, v := range obj {
		s, err := hyperParameter(v)
		if err != nil {
			return fmt.Errorf("%w: HyperParameters.%s: %v", job.ErrInvalid, k, err)
		}
		hp[k] = s
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, rc); err != nil {
		return fmt.Errorf("%w: run config: %v", job.ErrInvalid, err)
	}
	if n := utf8.RuneCount(compact.Bytes()); n > maxRunConfigEnv {
		req.Notes = append(req.Notes, fmt.Sprintf("the run config (%d characters) is longer than SageMaker's %d per environment value: %s is not set; read it from /opt/ml/input/config/hyperparameters.json",
			n, maxRunConfigEnv, runner.EnvRunConfig))
		return nil
	}
	objectMember(body, "Environment")[runner.EnvRunConfig] = compact.String()
	return nil
}

// hyperParameter formats one run config value as SageMaker delivers
// hyperparameters: strings as they are, numbers and bools as text, lists
// and objects as compact JSON.
func hyperParameter(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	case bool:
		return strconv.FormatBool(x), nil
	case nil:
		return "null", nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// setTags replaces any slipway:* tags of the body with this attempt's.
func setTags(body map[string]any, t runner.Task) {
	var tags []any
	if list, ok := body["Tags"].([]any); ok {
		for _, e := range list {
			if m, ok := e.(map[string]any); ok {
				if k, _ := m["Key"].(string); strings.HasPrefix(k, "slipway:") {
					continue
				}
			}
			tags = append(tags, e)
		}
	}
	for _, kv := range [][2]string{{TagJobID, t.Job.ID}, {TagQueue, t.Job.Queue}, {TagAttempt, strconv.Itoa(t.Job.Attempt)}} {
		tags = append(tags, map[string]any{"Key": kv[0], "Value": kv[1]})
	}
	body["Tags"] = tags
}

// checkLimits reports, before anything is sent, the limits a request
// built from a job is most likely to break, naming the member.
func checkLimits(body map[string]any) error {
	env, _ := body["Environment"].(map[string]any)
	if n := len(env); n > 100 {
		return fmt.Errorf("%w: Environment: %d variables (queue config and job env together): SageMaker allows at most 100", job.ErrInvalid, n)
	}
	for _, k := range slices.Sorted(maps.Keys(env)) {
		if n := utf8.RuneCountInString(k); n > 512 {
			return fmt.Errorf("%w: Environment: name of %d characters: SageMaker allows at most 512", job.ErrInvalid, n)
		}
		if s, ok := env[k].(string); ok && utf8.RuneCountInString(s) > maxEnvValueLen {
			return fmt.Errorf("%w: Environment.%s: value of %d characters: SageMaker allows at most %d", job.ErrInvalid, k, utf8.RuneCountInString(s), maxEnvValueLen)
		}
	}
	hp, _ := body["HyperParameters"].(map[string]any)
	if n := len(hp); n > 100 {
		return fmt.Errorf("%w: HyperParameters: %d entries (queue config and run config together): SageMaker allows at most 100", job.ErrInvalid, n)
	}
	for _, k := range slices.Sorted(maps.Keys(hp)) {
		if n := utf8.RuneCountInString(k); n > 256 {
			return fmt.Errorf("%w: HyperParameters: key of %d characters: SageMaker allows at most 256", job.ErrInvalid, n)
		}
		if s, ok := hp[k].(string); ok && utf8.RuneCountInString(s) > 2500 {
			return fmt.Errorf("%w: HyperParameters.%s: value of %d characters: SageMaker allows at most 2500", job.ErrInvalid, k, utf8.RuneCountInString(s))
		}
	}
	if tags, _ := body["Tags"].([]any); len(tags) > 50 {
		return fmt.Errorf("%w: Tags: %d tags (with Slipway's 3): SageMaker allows at most 50", job.ErrInvalid, len(tags))
	}
	return nil
}

// setSecretRefs passes each of the job's secret references as
// SLIPWAY_SECRET_<NAME>_REF, for the container to resolve with its
// execution role. A value has no safe way into a training job (its
// Environment and HyperParameters are plaintext to anyone who can describe
// it), so a job with one is refused, naming it.
func setSecretRefs(env map[string]any, t runner.Task) error {
	for _, s := range t.Job.Spec.Secrets {
		if strings.HasPrefix(s.Ref, job.SealedRef) {
			return fmt.Errorf("%w: secret %s was given as a value: a SageMaker training job's Environment is plaintext, so sagemaker queues take secrets by reference only; launch with --secret %s=secretsmanager:ARN or --secret %s=ssm:/path",
				job.ErrInvalid, s.Name, s.Name, s.Name)
		}
		if err := s.Validate(); err != nil {
			return err
		}
		env[runner.EnvSecretRefPrefix+s.Name+runner.EnvSecretRefSuffix] = s.Ref
	}
	if len(t.Secrets) > 0 {
		name := slices.Sorted(maps.Keys(t.Secrets))[0]
		return fmt.Errorf("%w: secret %s was given as a value: sagemaker queues take secrets by reference only; launch with --secret %s=secretsmanager:ARN or --secret %s=ssm:/path",
			job.ErrInvalid, name, name, name)
	}
	return nil
}

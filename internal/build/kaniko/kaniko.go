// Package kaniko is the builder that runs the kaniko executor as a
// Kubernetes Job: the build context is uploaded to the build-context-store
// in S3, the Job reads it with --context s3://... and pushes to
// --destination, the builder waits with a deadline, copies the pod's log
// into the build log and cleans up (the Job, its pods and the uploaded
// context). It reaches the cluster through KubeAPI, the few calls it makes;
// Kube implements them over client-go's REST client with a scheme of only
// batch/v1 and core/v1, so the agent does not link client-go's typed
// clientset and its registry of every API group.
package kaniko

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipway-ml/slipway/internal/build"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/registry"
)

// Name is the builder's name in results and logs.
const Name = "kaniko"

// DefaultImage is the pinned kaniko executor image.
const DefaultImage = "gcr.io/kaniko-project/executor:v1.23.2"

// S3API is the part of the S3 client the builder calls (*s3.Client).
type S3API interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, opts ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
}

// Config configures the builder. Defaults are those New fills in.
type Config struct {
	// Kube is the Kubernetes API (NewKube). Required.
	Kube KubeAPI
	// S3 uploads build contexts. Required.
	S3 S3API
	// ContextStore is s3://bucket[/prefix] (builder.build-context-store).
	// Required.
	ContextStore string
	// Namespace the Jobs run in. Default "default".
	Namespace string
	// ServiceAccount the build pods run as (for IRSA access to S3 and ECR).
	// Default "": the namespace's default.
	ServiceAccount string
	// Image is the kaniko executor image. Default DefaultImage.
	Image string
	// JobName prefixes the Jobs' names (builder.build-job-name). Default
	// "slipway-build".
	JobName string
	// SecretName and SecretKey name a Secret holding a Docker config.json
	// for the registry, mounted as /kaniko/.docker/config.json. Default "":
	// none (kaniko's own ECR helper with the pod's AWS credentials).
	SecretName, SecretKey string
	// Env is extra environment for the executor (AWS_REGION, S3_ENDPOINT,
	// S3_FORCE_PATH_STYLE...). Default none.
	Env map[string]string
	// Customize edits each Job before it is created: the extra job spec
	// (node selectors, resources, tolerations...). Default none.
	Customize func(*batchv1.Job)
	// Deadline bounds a build whose request sets no timeout. Default 1h.
	Deadline time.Duration
	// Poll is how often the Job's status is read. Default 2s.
	Poll time.Duration
}

// Builder runs kaniko Jobs.
type Builder struct {
	cfg    Config
	bucket string
	prefix string
}

var _ build.Builder = (*Builder)(nil)

// New checks cfg and returns the builder.
func New(cfg Config) (*Builder, error) {
	if cfg.Kube == nil || cfg.S3 == nil {
		return nil, errors.New("kaniko builder: needs a Kubernetes client and an S3 client")
	}
	u, err := url.Parse(cfg.ContextStore)
	if err != nil || u.Scheme != "s3" || u.Host == "" {
		return nil, fmt.Errorf("%w: builder.build-context-store %q: want s3://bucket/prefix", job.ErrInvalid, cfg.ContextStore)
	}
	if cfg.SecretName != "" && cfg.SecretKey == "" || cfg.SecretName == "" && cfg.SecretKey != "" {
		return nil, fmt.Errorf("%w: builder.secret-name and builder.secret-key: set both or neither", job.ErrInvalid)
	}
	if cfg.Namespace == "" {
		cfg.Namespace = "default"
	}
	if cfg.Image == "" {
		cfg.Image = DefaultImage
	}
	if cfg.JobName == "" {
		cfg.JobName = "slipway-build"
	}
	if cfg.Deadline == 0 {
		cfg.Deadline = time.Hour
	}
	if cfg.Poll == 0 {
		cfg.Poll = 2 * time.Second
	}
	return &Builder{cfg: cfg, bucket: u.Host, prefix: strings.Trim(u.Path, "/")}, nil
}

// Build implements build.Builder.
func (b *Builder) Build(ctx context.Context, req build.Request) (build.Result, error) {
	req = req.WithDefaults()
	if req.Timeout == 0 {
		req.Timeout = b.cfg.Deadline
	}
	if req.Registry == nil {
		return build.Result{}, fmt.Errorf("%w: the kaniko builder needs a registry to push to", job.ErrInvalid)
	}
	ctx, cancel := build.WithTimeout(ctx, req)
	defer cancel()
	res, err := b.build(ctx, req)
	if err != nil && ctx.Err() != nil {
		return build.Result{}, fmt.Errorf("%w: %w", context.Cause(ctx), err)
	}
	return res, err
}

func (b *Builder) build(ctx context.Context, req build.Request) (build.Result, error) {
	p, err := build.Prepare(req)
	if err != nil {
		return build.Result{}, err
	}
	var digests []string
	for _, base := range p.Bases() {
		digests = append(digests, baseDigest(ctx, req, base))
	}
	tag := p.Tag(digests)
	if res, ok := build.Skip(ctx, req, tag, Name); ok {
		return res, nil
	}
	repo, err := req.Registry.Repository(ctx)
	if err != nil {
		return build.Result{}, fmt.Errorf("finding the repository: %w", err)
	}

	key, err := b.upload(ctx, p, tag)
	if err != nil {
		return build.Result{}, err
	}
	defer func() {
		_, err := b.cfg.S3.DeleteObject(context.WithoutCancel(ctx), &s3.DeleteObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(key)})
		if err != nil {
			req.Log(fmt.Sprintf("could not delete the build context s3://%s/%s: %v", b.bucket, key, err))
		}
	}()
	req.Log(fmt.Sprintf("uploaded the build context to s3://%s/%s", b.bucket, key))

	j := b.jobSpec(p, req, tag, "s3://"+b.bucket+"/"+key, repo+":"+tag)
	if err := b.cfg.Kube.CreateJob(ctx, b.cfg.Namespace, j); err != nil {
		if !apierrors.IsAlreadyExists(err) {
			return build.Result{}, fmt.Errorf("creating build job %s: %w", j.Name, err)
		}
		req.Log(fmt.Sprintf("build job %s already exists: following it", j.Name))
	} else {
		req.Log(fmt.Sprintf("started build job %s/%s", b.cfg.Namespace, j.Name))
	}
	defer b.cleanup(context.WithoutCancel(ctx), j.Name, req.Log)

	ok, err := b.wait(ctx, j.Name)
	b.copyLogs(context.WithoutCancel(ctx), j.Name, req.Log)
	if err != nil {
		return build.Result{}, fmt.Errorf("waiting for build job %s: %w", j.Name, err)
	}
	if !ok {
		return build.Result{}, fmt.Errorf("build job %s failed: see the build log", j.Name)
	}
	digest, found, err := req.Registry.Exists(ctx, tag)
	if err != nil || !found {
		return build.Result{}, fmt.Errorf("build job %s succeeded but %s:%s is not in the registry (%v)", j.Name, repo, tag, err)
	}
	return build.Result{Image: repo + "@" + digest, Tag: tag, Builder: Name}, nil
}

// baseDigest asks the base's registry for its digest; kaniko pulls it
// itself, so when it cannot be asked the reference stands in.
func baseDigest(ctx context.Context, req build.Request, base string) string {
	if ref, err := name.ParseReference(base); err == nil {
		desc, err := remote.Head(ref, remote.WithContext(ctx), remote.WithAuthFromKeychain(registry.Keychain(req.Registry)))
		if err == nil {
			return desc.Digest.String()
		}
	}
	req.Log(fmt.Sprintf("could not read the digest of base image %s: tagging by its name", base))
	return base
}

// dockerfileName is where the Dockerfile goes in the uploaded context.
const dockerfileName = ".slipway.Dockerfile"

func (b *Builder) upload(ctx context.Context, p *build.Plan, tag string) (string, error) {
	tarball, err := p.Context.Tar(build.File{Name: dockerfileName, Type: tar.TypeReg, Mode: 0o644, Body: []byte(p.Dockerfile)})
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(tarball); err != nil {
		return "", err
	}
	if err := zw.Close(); err != nil {
		return "", err
	}
	key := path.Join(b.prefix, tag+".tar.gz")
	_, err = b.cfg.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(key),
		Body: bytes.NewReader(buf.Bytes()), ContentType: aws.String("application/gzip")})
	if err != nil {
		return "", fmt.Errorf("uploading the build context to s3://%s/%s: %w", b.bucket, key, err)
	}
	return key, nil
}

// jobName is deterministic per build, so that two agents building the
// same code follow one Job.
func (b *Builder) jobName(tag string) string {
	n := b.cfg.JobName
	if len(n) > 40 {
		n = n[:40]
	}
	return strings.TrimSuffix(n, "-") + "-" + tag[:20]
}

func (b *Builder) jobSpec(p *build.Plan, req build.Request, tag, contextURL, dest string) *batchv1.Job {
	labels := map[string]string{"app.kubernetes.io/managed-by": "slipway", "slipway/content-tag": tag[:63]}
	args := []string{
		"--context=" + contextURL,
		"--dockerfile=" + dockerfileName,
		"--destination=" + dest,
		"--custom-platform=" + p.Platform.String(),
		"--label=slipway.content-tag=" + tag,
		"--reproducible",
	}
	var env []corev1.EnvVar
	for k, v := range b.cfg.Env {
		env = append(env, corev1.EnvVar{Name: k, Value: v})
	}
	slices.SortFunc(env, func(a, b corev1.EnvVar) int { return strings.Compare(a.Name, b.Name) })
	c := corev1.Container{Name: "kaniko", Image: b.cfg.Image, Args: args, Env: env}
	pod := corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, ServiceAccountName: b.cfg.ServiceAccount}
	if b.cfg.SecretName != "" {
		pod.Volumes = []corev1.Volume{{Name: "docker-config", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: b.cfg.SecretName, Items: []corev1.KeyToPath{{Key: b.cfg.SecretKey, Path: "config.json"}}}}}}
		c.VolumeMounts = []corev1.VolumeMount{{Name: "docker-config", MountPath: "/kaniko/.docker"}}
	}
	pod.Containers = []corev1.Container{c}
	deadline := int64(req.Timeout / time.Second)
	backoff, ttl := int32(0), int32(600)
	j := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: b.jobName(tag), Namespace: b.cfg.Namespace, Labels: labels},
		Spec: batchv1.JobSpec{
			BackoffLimit: &backoff, ActiveDeadlineSeconds: &deadline, TTLSecondsAfterFinished: &ttl,
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: pod},
		},
	}
	if b.cfg.Customize != nil {
		b.cfg.Customize(j)
	}
	return j
}

// wait polls the Job until it succeeds (true) or fails (false).
func (b *Builder) wait(ctx context.Context, jobName string) (bool, error) {
	t := time.NewTicker(b.cfg.Poll)
	defer t.Stop()
	for {
		j, err := b.cfg.Kube.GetJob(ctx, b.cfg.Namespace, jobName)
		if err != nil {
			return false, err
		}
		for _, c := range j.Status.Conditions {
			if c.Status != corev1.ConditionTrue {
				continue
			}
			switch c.Type {
			case batchv1.JobComplete:
				return true, nil
			case batchv1.JobFailed:
				return false, nil
			}
		}
		if j.Status.Succeeded > 0 {
			return true, nil
		}
		if j.Status.Failed > 0 {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, context.Cause(ctx)
		case <-t.C:
		}
	}
}

// copyLogs copies the build pods' logs into the build log.
func (b *Builder) copyLogs(ctx context.Context, jobName string, log func(string)) {
	pods, err := b.cfg.Kube.ListPods(ctx, b.cfg.Namespace, "job-name="+jobName)
	if err != nil {
		log(fmt.Sprintf("could not list the pods of %s: %v", jobName, err))
		return
	}
	for _, pod := range pods {
		rc, err := b.cfg.Kube.PodLog(ctx, b.cfg.Namespace, pod.Name, "kaniko")
		if err != nil {
			log(fmt.Sprintf("could not read the log of pod %s: %v", pod.Name, err))
			continue
		}
		sc := bufio.NewScanner(rc)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			log(sc.Text())
		}
		rc.Close()
	}
}

func (b *Builder) cleanup(ctx context.Context, jobName string, log func(string)) {
	err := b.cfg.Kube.DeleteJob(ctx, b.cfg.Namespace, jobName)
	if err != nil && !apierrors.IsNotFound(err) {
		log(fmt.Sprintf("could not delete build job %s: %v", jobName, err))
	}
}

// No Kubernetes API server can run here: these tests drive the Job through
// client-go's fake clientset, reached two ways (KubeAPI on the clientset
// directly, and Kube over HTTP to the hand-written API stand-in of
// kube_test.go), with the test playing the kaniko executor (it reads the
// uploaded context from S3 and pushes the image to the --destination). The
// S3 upload goes to the local AWS endpoint for real.
package kaniko

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"

	"github.com/slipway-ml/slipway/internal/build"
	"github.com/slipway-ml/slipway/internal/build/buildtest"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/localaws/localawstest"
	"github.com/slipway-ml/slipway/internal/registry/oci"
)

type env struct {
	kube *fake.Clientset
	api  *apiServer // nil when the builder calls the clientset directly
	s3   *s3.Client
	reg  *buildtest.Registry
	dst  *oci.Registry
	b    *Builder
}

// kubes are the two ways the builder reaches the fake cluster in these
// tests: "clientset" (KubeAPI on the fake clientset) and "rest" (Kube, the
// production implementation, over HTTP to the API stand-in).
var kubes = []string{"clientset", "rest"}

// eachKube runs test once per way of reaching the cluster, in parallel.
func eachKube(t *testing.T, test func(t *testing.T, e env)) {
	for _, k := range kubes {
		t.Run(k, func(t *testing.T) {
			t.Parallel()
			test(t, setup(t, k))
		})
	}
}

func setup(t *testing.T, kubeVia string) env {
	t.Helper()
	srv := localawstest.Start(t)
	s3c := s3.NewFromConfig(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL()),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDLOCAL", "secret", "")},
		func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := s3c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String("builds")}); err != nil {
		t.Fatal(err)
	}
	reg := buildtest.NewRegistry(t)
	dst, err := oci.New(oci.Config{Repository: reg.Host + "/jobs/train"})
	if err != nil {
		t.Fatal(err)
	}
	kube := fake.NewClientset()
	var api KubeAPI = clientsetKube{kube}
	var stand *apiServer
	if kubeVia == "rest" {
		stand = newAPIServer(t, kube)
		if api, err = NewKube(&rest.Config{Host: stand.URL}); err != nil {
			t.Fatal(err)
		}
	}
	b, err := New(Config{Kube: api, S3: s3c, ContextStore: "s3://builds/contexts", Namespace: "ml", ServiceAccount: "builder",
		Env: map[string]string{"AWS_REGION": "us-east-1", "S3_FORCE_PATH_STYLE": "true"}, Poll: 10 * time.Millisecond,
		Customize: func(j *batchv1.Job) { j.Spec.Template.Spec.NodeSelector = map[string]string{"pool": "build"} }})
	if err != nil {
		t.Fatal(err)
	}
	return env{kube: kube, api: stand, s3: s3c, reg: reg, dst: dst, b: b}
}

// executor plays kaniko for the next Job: it checks the context in S3,
// pushes an image to the destination unless fail, and ends the Job.
type executor struct {
	job     *batchv1.Job
	context map[string]string // files in the uploaded context
}

func (e env) runExecutor(t *testing.T, fail bool) <-chan executor {
	done := make(chan executor, 1)
	go func() {
		defer close(done)
		ctx := context.Background()
		var j *batchv1.Job
		for j == nil {
			list, err := e.kube.BatchV1().Jobs("ml").List(ctx, metav1.ListOptions{})
			if err != nil {
				t.Error(err)
				return
			}
			if len(list.Items) > 0 {
				j = &list.Items[0]
			} else {
				time.Sleep(5 * time.Millisecond)
			}
		}
		ex := executor{job: j.DeepCopy(), context: map[string]string{}}
		args := j.Spec.Template.Spec.Containers[0].Args
		u, _ := url.Parse(strings.TrimPrefix(argValue(args, "--context"), ""))
		obj, err := e.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(u.Host), Key: aws.String(strings.TrimPrefix(u.Path, "/"))})
		if err != nil {
			t.Errorf("reading the build context from S3: %v", err)
			return
		}
		zr, err := gzip.NewReader(obj.Body)
		if err != nil {
			t.Error(err)
			return
		}
		tr := tar.NewReader(zr)
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			b, _ := io.ReadAll(tr)
			ex.context[h.Name] = string(b)
		}
		if !fail {
			img, _ := random.Image(64, 1)
			ref, err := name.NewTag(argValue(args, "--destination"))
			if err == nil {
				err = remote.Write(ref, img)
			}
			if err != nil {
				t.Errorf("pushing to the destination: %v", err)
			}
		}
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: j.Name + "-x", Namespace: "ml", Labels: map[string]string{"job-name": j.Name}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "kaniko"}}}}
		if _, err := e.kube.CoreV1().Pods("ml").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Error(err)
		}
		cond := batchv1.JobCondition{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}
		if fail {
			cond.Type = batchv1.JobFailed
		}
		j.Status.Conditions = append(j.Status.Conditions, cond)
		if _, err := e.kube.BatchV1().Jobs("ml").UpdateStatus(ctx, j, metav1.UpdateOptions{}); err != nil {
			t.Error(err)
		}
		done <- ex
	}()
	return done
}

func argValue(args []string, flag string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v
		}
	}
	return ""
}

func files(version string) map[string]string {
	return map[string]string{"requirements.txt": "torch\n", "train.py": "print(" + version + ")\n"}
}

func TestBuild(t *testing.T) {
	t.Parallel()
	eachKube(t, func(t *testing.T, e env) {
		ctx := context.Background()
		logs := &buildtest.Lines{}
		req := build.Request{Context: buildtest.Context(t, files("1")), BaseImage: "python:3.12", Registry: e.dst, Log: logs.Add, Timeout: time.Minute}
		exec := e.runExecutor(t, false)
		res, err := e.b.Build(ctx, req)
		if err != nil {
			t.Fatalf("build: %v\n%s", err, logs)
		}
		ex := <-exec
		if res.Skipped || res.Builder != "kaniko" || !strings.HasPrefix(res.Image, e.reg.Host+"/jobs/train@sha256:") {
			t.Errorf("result %+v, want built by kaniko and pushed by digest", res)
		}

		// The Job spec.
		j := ex.job
		pod := j.Spec.Template.Spec
		c := pod.Containers[0]
		wantArgs := []string{"--context=s3://builds/contexts/" + res.Tag + ".tar.gz", "--dockerfile=.slipway.Dockerfile",
			"--destination=" + e.reg.Host + "/jobs/train:" + res.Tag, "--custom-platform=linux/amd64"}
		for _, a := range wantArgs {
			if !slices.Contains(c.Args, a) {
				t.Errorf("executor args %q lack %q", c.Args, a)
			}
		}
		if c.Image != DefaultImage || pod.ServiceAccountName != "builder" || pod.RestartPolicy != corev1.RestartPolicyNever ||
			*j.Spec.BackoffLimit != 0 || *j.Spec.ActiveDeadlineSeconds != 60 || pod.NodeSelector["pool"] != "build" {
			t.Errorf("job spec: image %s, sa %q, restart %s, backoff %d, deadline %d, nodeSelector %v; want the defaults, builder, Never, 0, 60 and pool=build",
				c.Image, pod.ServiceAccountName, pod.RestartPolicy, *j.Spec.BackoffLimit, *j.Spec.ActiveDeadlineSeconds, pod.NodeSelector)
		}
		if len(c.Env) != 2 || c.Env[0].Name != "AWS_REGION" {
			t.Errorf("executor env %v, want AWS_REGION and S3_FORCE_PATH_STYLE", c.Env)
		}

		// The context kaniko read: the code and the generated Dockerfile.
		if ex.context["train.py"] != "print(1)\n" || !strings.Contains(ex.context[".slipway.Dockerfile"], "FROM python:3.12") {
			t.Errorf("uploaded context %v, want train.py and the generated Dockerfile", ex.context)
		}
		// The pod's log copied, the Job and the context cleaned up.
		if !strings.Contains(logs.String(), "fake logs") {
			t.Errorf("build log lacks the pod's log:\n%s", logs)
		}
		if _, err := e.kube.BatchV1().Jobs("ml").Get(ctx, j.Name, metav1.GetOptions{}); err == nil {
			t.Errorf("job %s still there after the build", j.Name)
		}
		if _, err := e.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("builds"), Key: aws.String("contexts/" + res.Tag + ".tar.gz")}); err == nil {
			t.Error("the build context is still in S3 after the build")
		}

		// Unchanged code: no Job at all.
		again, err := e.b.Build(ctx, req)
		if err != nil || !again.Skipped || again.Image != res.Image {
			t.Errorf("rebuild = %+v, %v; want skipped with %s", again, err, res.Image)
		}
		if list, _ := e.kube.BatchV1().Jobs("ml").List(ctx, metav1.ListOptions{}); len(list.Items) != 0 {
			t.Errorf("rebuild created %d jobs, want none", len(list.Items))
		}
	})
}

func TestBuildFails(t *testing.T) {
	t.Parallel()
	eachKube(t, func(t *testing.T, e env) {
		exec := e.runExecutor(t, true)
		logs := &buildtest.Lines{}
		_, err := e.b.Build(context.Background(), build.Request{Context: buildtest.Context(t, files("2")), BaseImage: "python:3.12", Registry: e.dst, Log: logs.Add})
		ex := <-exec
		if err == nil || !strings.Contains(err.Error(), "failed") {
			t.Errorf("failed job: got %v, want a build failure", err)
		}
		if !strings.Contains(logs.String(), "fake logs") {
			t.Errorf("build log lacks the pod's log:\n%s", logs)
		}
		if _, err := e.kube.BatchV1().Jobs("ml").Get(context.Background(), ex.job.Name, metav1.GetOptions{}); err == nil {
			t.Error("failed job still there")
		}
	})
}

// TestBuildFollowsExistingJob: when another agent created the same build's
// Job first, the create answers AlreadyExists and the builder follows that
// Job instead of failing.
func TestBuildFollowsExistingJob(t *testing.T) {
	t.Parallel()
	eachKube(t, func(t *testing.T, e env) {
		e.kube.PrependReactor("create", "jobs", func(a k8stesting.Action) (bool, runtime.Object, error) {
			j := a.(k8stesting.CreateAction).GetObject().(*batchv1.Job)
			if err := e.kube.Tracker().Create(batchv1.SchemeGroupVersion.WithResource("jobs"), j, a.GetNamespace()); err != nil {
				return true, nil, err
			}
			return true, nil, apierrors.NewAlreadyExists(schema.GroupResource{Group: "batch", Resource: "jobs"}, j.Name)
		})
		exec := e.runExecutor(t, false)
		logs := &buildtest.Lines{}
		res, err := e.b.Build(context.Background(), build.Request{Context: buildtest.Context(t, files("4")), BaseImage: "python:3.12",
			Registry: e.dst, Log: logs.Add})
		<-exec
		if err != nil || res.Skipped || !strings.HasPrefix(res.Image, e.reg.Host+"/jobs/train@sha256:") {
			t.Fatalf("build: got %+v, %v; want the image the existing job pushed\n%s", res, err, logs)
		}
		if !strings.Contains(logs.String(), "already exists: following it") {
			t.Errorf("build log does not say it follows the existing job:\n%s", logs)
		}
	})
}

func TestBuildDeadline(t *testing.T) {
	t.Parallel()
	eachKube(t, func(t *testing.T, e env) {
		_, err := e.b.Build(context.Background(), build.Request{Context: buildtest.Context(t, files("3")), BaseImage: "python:3.12",
			Registry: e.dst, Timeout: 200 * time.Millisecond})
		if err == nil || !strings.Contains(err.Error(), "timed out") {
			t.Errorf("a job that never ends: got %v, want a timeout", err)
		}
		if list, _ := e.kube.BatchV1().Jobs("ml").List(context.Background(), metav1.ListOptions{}); len(list.Items) != 0 {
			t.Errorf("%d jobs left after the timeout, want none", len(list.Items))
		}
	})
}

func TestNewInvalid(t *testing.T) {
	t.Parallel()
	kube := clientsetKube{fake.NewClientset()}
	for _, c := range []Config{
		{Kube: kube, S3: &s3.Client{}, ContextStore: "builds/prefix"},
		{Kube: kube, S3: &s3.Client{}, ContextStore: "s3://"},
		{Kube: kube, S3: &s3.Client{}, ContextStore: "s3://b", SecretName: "x"},
	} {
		if _, err := New(c); !errors.Is(err, job.ErrInvalid) {
			t.Errorf("New(%q, secret %q) = %v, want ErrInvalid", c.ContextStore, c.SecretName, err)
		}
	}
	b, err := New(Config{Kube: kube, S3: &s3.Client{}, ContextStore: "s3://b", SecretName: "regcred", SecretKey: ".dockerconfigjson"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := build.Prepare(build.Request{Context: buildtest.Context(t, map[string]string{"Dockerfile": "FROM x\n"})})
	if err != nil {
		t.Fatal(err)
	}
	j := b.jobSpec(p, build.Request{Timeout: time.Hour}, strings.Repeat("a", 64), "s3://b/k", "r:t")
	m := j.Spec.Template.Spec.Containers[0].VolumeMounts
	if len(m) != 1 || m[0].MountPath != "/kaniko/.docker" || j.Spec.Template.Spec.Volumes[0].Secret.SecretName != "regcred" {
		t.Errorf("secret volume %+v, want regcred mounted at /kaniko/.docker", j.Spec.Template.Spec.Volumes)
	}
}

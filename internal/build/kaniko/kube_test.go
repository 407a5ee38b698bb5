package kaniko

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
)

// clientsetKube is KubeAPI over a client-go clientset: the tests use it on
// client-go's fake clientset.
type clientsetKube struct{ c kubernetes.Interface }

func (k clientsetKube) CreateJob(ctx context.Context, namespace string, j *batchv1.Job) error {
	_, err := k.c.BatchV1().Jobs(namespace).Create(ctx, j, metav1.CreateOptions{})
	return err
}

func (k clientsetKube) GetJob(ctx context.Context, namespace, name string) (*batchv1.Job, error) {
	return k.c.BatchV1().Jobs(namespace).Get(ctx, name, metav1.GetOptions{})
}

func (k clientsetKube) DeleteJob(ctx context.Context, namespace, name string) error {
	bg := metav1.DeletePropagationBackground
	return k.c.BatchV1().Jobs(namespace).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &bg})
}

func (k clientsetKube) ListPods(ctx context.Context, namespace, selector string) ([]corev1.Pod, error) {
	list, err := k.c.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, err
	}
	return list.Items, nil
}

func (k clientsetKube) PodLog(ctx context.Context, namespace, pod, container string) (io.ReadCloser, error) {
	return k.c.CoreV1().Pods(namespace).GetLogs(pod, &corev1.PodLogOptions{Container: container}).Stream(ctx)
}

var _ KubeAPI = clientsetKube{}

// apiServer is a hand-written stand-in for the Kubernetes API server, because
// none can run here: it answers the few paths Kube calls the way the API
// server does (JSON objects with their kind and apiVersion, 201 on create, a
// Status body with the code and reason on errors), keeping the objects in
// client-go's fake clientset, which the tests also drive directly (as the
// Job controller and kubelet would). Any other request fails the test.
type apiServer struct {
	t    *testing.T
	kube *fake.Clientset
	URL  string

	mu       sync.Mutex
	requests []string // "METHOD path?query", in order
	deletes  []metav1.DeleteOptions
}

func newAPIServer(t *testing.T, kube *fake.Clientset) *apiServer {
	t.Helper()
	s := &apiServer{t: t, kube: kube}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /apis/batch/v1/namespaces/{ns}/jobs", s.createJob)
	mux.HandleFunc("GET /apis/batch/v1/namespaces/{ns}/jobs/{name}", s.getJob)
	mux.HandleFunc("DELETE /apis/batch/v1/namespaces/{ns}/jobs/{name}", s.deleteJob)
	mux.HandleFunc("GET /api/v1/namespaces/{ns}/pods", s.listPods)
	mux.HandleFunc("GET /api/v1/namespaces/{ns}/pods/{name}/log", s.podLog)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the API stand-in got an unexpected request %s %s", r.Method, r.URL)
		s.status(w, apierrors.NewNotFound(schema.GroupResource{}, r.URL.Path))
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests = append(s.requests, r.Method+" "+r.URL.RequestURI())
		s.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// Requests returns the requests served so far.
func (s *apiServer) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// Deletes returns the options of the deletes served so far.
func (s *apiServer) Deletes() []metav1.DeleteOptions {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.deletes)
}

func (s *apiServer) createJob(w http.ResponseWriter, r *http.Request) {
	var j batchv1.Job
	if !s.decode(w, r, &j, "batch/v1", "Job") {
		return
	}
	if j.Namespace != "" && j.Namespace != r.PathValue("ns") {
		s.status(w, apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request"))
		return
	}
	got, err := s.kube.BatchV1().Jobs(r.PathValue("ns")).Create(r.Context(), &j, metav1.CreateOptions{})
	s.reply(w, http.StatusCreated, got, "batch/v1", "Job", err)
}

func (s *apiServer) getJob(w http.ResponseWriter, r *http.Request) {
	got, err := s.kube.BatchV1().Jobs(r.PathValue("ns")).Get(r.Context(), r.PathValue("name"), metav1.GetOptions{})
	s.reply(w, http.StatusOK, got, "batch/v1", "Job", err)
}

func (s *apiServer) deleteJob(w http.ResponseWriter, r *http.Request) {
	var opts metav1.DeleteOptions
	if !s.decode(w, r, &opts, "", "DeleteOptions") {
		return
	}
	s.mu.Lock()
	s.deletes = append(s.deletes, opts)
	s.mu.Unlock()
	ns, name := r.PathValue("ns"), r.PathValue("name")
	if err := s.kube.BatchV1().Jobs(ns).Delete(r.Context(), name, opts); err != nil {
		s.status(w, err)
		return
	}
	// The object is gone at once (background propagation): the API server
	// answers a success Status.
	s.reply(w, http.StatusOK, &metav1.Status{Status: metav1.StatusSuccess,
		Details: &metav1.StatusDetails{Name: name, Group: "batch", Kind: "jobs"}}, "v1", "Status", nil)
}

func (s *apiServer) listPods(w http.ResponseWriter, r *http.Request) {
	list, err := s.kube.CoreV1().Pods(r.PathValue("ns")).List(r.Context(), metav1.ListOptions{LabelSelector: r.URL.Query().Get("labelSelector")})
	s.reply(w, http.StatusOK, list, "v1", "PodList", err)
}

func (s *apiServer) podLog(w http.ResponseWriter, r *http.Request) {
	ns, name, container := r.PathValue("ns"), r.PathValue("name"), r.URL.Query().Get("container")
	pod, err := s.kube.CoreV1().Pods(ns).Get(r.Context(), name, metav1.GetOptions{})
	if err != nil {
		s.status(w, err)
		return
	}
	if !slices.ContainsFunc(pod.Spec.Containers, func(c corev1.Container) bool { return c.Name == container }) {
		s.status(w, apierrors.NewBadRequest("container "+container+" is not valid for pod "+name))
		return
	}
	rc, err := s.kube.CoreV1().Pods(ns).GetLogs(name, &corev1.PodLogOptions{Container: container}).Stream(r.Context())
	if err != nil {
		s.status(w, err)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "text/plain")
	io.Copy(w, rc)
}

// decode reads a JSON body that must name its apiVersion (when want is set)
// and kind, as the API server requires.
func (s *apiServer) decode(w http.ResponseWriter, r *http.Request, into any, apiVersion, kind string) bool {
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		s.status(w, apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, r.Method, schema.GroupResource{}, "", "unsupported media type "+ct, 0, false))
		return false
	}
	body, err := io.ReadAll(r.Body)
	if err == nil {
		err = json.Unmarshal(body, into)
	}
	var tm metav1.TypeMeta
	if err == nil {
		err = json.Unmarshal(body, &tm)
	}
	if err == nil && (tm.Kind != kind || apiVersion != "" && tm.APIVersion != apiVersion) {
		err = errors.New("got " + tm.APIVersion + " " + tm.Kind + ", want " + apiVersion + " " + kind)
	}
	if err != nil {
		s.status(w, apierrors.NewBadRequest("decoding the request body: "+err.Error()))
		return false
	}
	return true
}

// reply writes obj with its type, or err as a Status.
func (s *apiServer) reply(w http.ResponseWriter, code int, obj interface {
	GetObjectKind() schema.ObjectKind
}, apiVersion, kind string, err error) {
	if err != nil {
		s.status(w, err)
		return
	}
	obj.GetObjectKind().SetGroupVersionKind(schema.FromAPIVersionAndKind(apiVersion, kind))
	s.write(w, code, obj)
}

// status writes err as the API server does: a Status with its code.
func (s *apiServer) status(w http.ResponseWriter, err error) {
	var api apierrors.APIStatus
	if !errors.As(err, &api) {
		api = apierrors.NewInternalError(err)
	}
	st := api.Status()
	st.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Status"}
	s.write(w, int(st.Code), &st)
}

func (s *apiServer) write(w http.ResponseWriter, code int, obj any) {
	b, err := json.Marshal(obj)
	if err != nil {
		s.t.Errorf("encoding %T: %v", obj, err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(b)
}

// kubeSetup returns Kube talking to a stand-in API server over a fake
// clientset.
func kubeSetup(t *testing.T) (*Kube, *apiServer) {
	t.Helper()
	srv := newAPIServer(t, fake.NewClientset())
	k, err := NewKube(&rest.Config{Host: srv.URL, BearerToken: "t0ken"})
	if err != nil {
		t.Fatal(err)
	}
	return k, srv
}

func TestKube(t *testing.T) {
	t.Parallel()
	k, srv := kubeSetup(t)
	ctx := context.Background()
	backoff := int32(0)
	j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "b-1", Labels: map[string]string{"app": "x"}},
		Spec: batchv1.JobSpec{BackoffLimit: &backoff, Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "kaniko", Image: "executor", Args: []string{"--context=s3://b/k"}}}}}}}

	if err := k.CreateJob(ctx, "ml", j); err != nil {
		t.Fatalf("creating a job: %v", err)
	}
	err := k.CreateJob(ctx, "ml", j)
	if !apierrors.IsAlreadyExists(err) || err.Error() != `jobs.batch "b-1" already exists` {
		t.Errorf("creating it again: got %v, want the API's AlreadyExists status", err)
	}
	got, err := k.GetJob(ctx, "ml", "b-1")
	if err != nil {
		t.Fatalf("getting the job: %v", err)
	}
	if got.Namespace != "ml" || got.Labels["app"] != "x" || *got.Spec.BackoffLimit != 0 ||
		!slices.Equal(got.Spec.Template.Spec.Containers[0].Args, []string{"--context=s3://b/k"}) {
		t.Errorf("got job %+v, want the one created in ml", got)
	}
	_, err = k.GetJob(ctx, "other", "b-1")
	if !apierrors.IsNotFound(err) || err.Error() != `jobs.batch "b-1" not found` {
		t.Errorf("getting it from another namespace: got %v, want the API's NotFound status", err)
	}

	for _, p := range []*corev1.Pod{
		{ObjectMeta: metav1.ObjectMeta{Name: "b-1-x", Labels: map[string]string{"job-name": "b-1"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "kaniko"}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "b-2-x", Labels: map[string]string{"job-name": "b-2"}}},
	} {
		if _, err := srv.kube.CoreV1().Pods("ml").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pods, err := k.ListPods(ctx, "ml", "job-name=b-1")
	if err != nil || len(pods) != 1 || pods[0].Name != "b-1-x" {
		t.Errorf("listing job b-1's pods: got %v, %v; want b-1-x", pods, err)
	}
	rc, err := k.PodLog(ctx, "ml", "b-1-x", "kaniko")
	if err != nil {
		t.Fatalf("streaming the log: %v", err)
	}
	log, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(log) != "fake logs" {
		t.Errorf("log: got %q, %v; want the pod's log", log, err)
	}
	if _, err := k.PodLog(ctx, "ml", "gone", "kaniko"); !apierrors.IsNotFound(err) {
		t.Errorf("log of a missing pod: got %v, want NotFound", err)
	}
	if _, err := k.PodLog(ctx, "ml", "b-1-x", "sidecar"); !apierrors.IsBadRequest(err) {
		t.Errorf("log of a missing container: got %v, want BadRequest", err)
	}

	if err := k.DeleteJob(ctx, "ml", "b-1"); err != nil {
		t.Fatalf("deleting the job: %v", err)
	}
	if err := k.DeleteJob(ctx, "ml", "b-1"); !apierrors.IsNotFound(err) {
		t.Errorf("deleting it again: got %v, want NotFound", err)
	}
	if _, err := k.GetJob(ctx, "ml", "b-1"); !apierrors.IsNotFound(err) {
		t.Errorf("getting the deleted job: got %v, want NotFound", err)
	}
	if d := srv.Deletes(); len(d) == 0 || d[0].PropagationPolicy == nil || *d[0].PropagationPolicy != metav1.DeletePropagationBackground {
		t.Errorf("delete options: got %+v, want propagation Background (the pods go with the Job)", d)
	}

	want := []string{
		"POST /apis/batch/v1/namespaces/ml/jobs",
		"POST /apis/batch/v1/namespaces/ml/jobs",
		"GET /apis/batch/v1/namespaces/ml/jobs/b-1",
		"GET /apis/batch/v1/namespaces/other/jobs/b-1",
		"GET /api/v1/namespaces/ml/pods?labelSelector=job-name%3Db-1",
		"GET /api/v1/namespaces/ml/pods/b-1-x/log?container=kaniko",
		"GET /api/v1/namespaces/ml/pods/gone/log?container=kaniko",
		"GET /api/v1/namespaces/ml/pods/b-1-x/log?container=sidecar",
		"DELETE /apis/batch/v1/namespaces/ml/jobs/b-1",
		"DELETE /apis/batch/v1/namespaces/ml/jobs/b-1",
		"GET /apis/batch/v1/namespaces/ml/jobs/b-1",
	}
	if got := srv.Requests(); !slices.Equal(got, want) {
		t.Errorf("requests:\ngot  %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
}

// TestKubeAuth checks that Kube sends the credentials of its rest.Config.
func TestKubeAuth(t *testing.T) {
	t.Parallel()
	headers := make(chan http.Header, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case headers <- r.Header.Clone():
		default:
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",`+
			`"message":"jobs.batch \"b\" is forbidden: User \"x\" cannot get resource \"jobs\"","reason":"Forbidden","code":403}`)
	}))
	t.Cleanup(srv.Close)
	k, err := NewKube(&rest.Config{Host: srv.URL, BearerToken: "t0ken"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = k.GetJob(context.Background(), "ml", "b")
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "cannot get resource") {
		t.Errorf("got %v, want the API's Forbidden status", err)
	}
	h := <-headers
	if auth, agent := h.Get("Authorization"), h.Get("User-Agent"); auth != "Bearer t0ken" || agent == "" {
		t.Errorf("got Authorization %q, User-Agent %q; want the config's bearer token and a user agent", auth, agent)
	}
}

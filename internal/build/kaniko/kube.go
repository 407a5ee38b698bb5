package kaniko

import (
	"context"
	"fmt"
	"io"
	"net/http"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/rest"
)

// KubeAPI is the part of the Kubernetes API the builder calls. Errors from
// the API server keep their Status, so apierrors.IsNotFound and
// IsAlreadyExists recognise them.
type KubeAPI interface {
	// CreateJob creates the batch/v1 Job j in namespace.
	CreateJob(ctx context.Context, namespace string, j *batchv1.Job) error
	// GetJob reads the Job name in namespace.
	GetJob(ctx context.Context, namespace, name string) (*batchv1.Job, error)
	// DeleteJob deletes the Job name in namespace and, in the background,
	// its pods.
	DeleteJob(ctx context.Context, namespace, name string) error
	// ListPods lists the pods in namespace that match the label selector.
	ListPods(ctx context.Context, namespace, selector string) ([]corev1.Pod, error)
	// PodLog streams the log of one container of a pod in namespace.
	PodLog(ctx context.Context, namespace, pod, container string) (io.ReadCloser, error)
}

// scheme holds only the types the builder sends and receives: batch/v1,
// core/v1 and meta/v1 (Status, the options). Client-go's own scheme
// registers every API group at init, which costs the agent tens of MB.
var (
	scheme         = runtime.NewScheme()
	codecs         = serializer.NewCodecFactory(scheme)
	parameterCodec = runtime.NewParameterCodec(scheme)
)

func init() {
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
	utilruntime.Must(batchv1.AddToScheme(scheme))
	utilruntime.Must(corev1.AddToScheme(scheme))
}

// Kube is KubeAPI over client-go's REST client: one client for
// /apis/batch/v1 and one for /api/v1, sharing one HTTP client.
type Kube struct {
	batch *rest.RESTClient
	core  *rest.RESTClient
}

var _ KubeAPI = (*Kube)(nil)

// NewKube returns the API of the cluster rc names (from rest.InClusterConfig
// or a kubeconfig).
func NewKube(rc *rest.Config) (*Kube, error) {
	hc, err := rest.HTTPClientFor(rc)
	if err != nil {
		return nil, fmt.Errorf("making the Kubernetes HTTP client: %w", err)
	}
	batch, err := restClient(rc, hc, "/apis", batchv1.SchemeGroupVersion)
	if err != nil {
		return nil, err
	}
	core, err := restClient(rc, hc, "/api", corev1.SchemeGroupVersion)
	if err != nil {
		return nil, err
	}
	return &Kube{batch: batch, core: core}, nil
}

func restClient(rc *rest.Config, hc *http.Client, apiPath string, gv schema.GroupVersion) (*rest.RESTClient, error) {
	c := rest.CopyConfig(rc)
	c.APIPath = apiPath
	c.GroupVersion = &gv
	c.NegotiatedSerializer = codecs.WithoutConversion()
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	rcl, err := rest.RESTClientForConfigAndClient(c, hc)
	if err != nil {
		return nil, fmt.Errorf("making the Kubernetes client for %s: %w", gv, err)
	}
	return rcl, nil
}

// CreateJob implements KubeAPI.
func (k *Kube) CreateJob(ctx context.Context, namespace string, j *batchv1.Job) error {
	return k.batch.Post().Namespace(namespace).Resource("jobs").
		VersionedParams(&metav1.CreateOptions{}, parameterCodec).
		Body(j).Do(ctx).Error()
}

// GetJob implements KubeAPI.
func (k *Kube) GetJob(ctx context.Context, namespace, name string) (*batchv1.Job, error) {
	j := &batchv1.Job{}
	err := k.batch.Get().Namespace(namespace).Resource("jobs").Name(name).Do(ctx).Into(j)
	if err != nil {
		return nil, err
	}
	return j, nil
}

// DeleteJob implements KubeAPI.
func (k *Kube) DeleteJob(ctx context.Context, namespace, name string) error {
	bg := metav1.DeletePropagationBackground
	return k.batch.Delete().Namespace(namespace).Resource("jobs").Name(name).
		Body(&metav1.DeleteOptions{PropagationPolicy: &bg}).Do(ctx).Error()
}

// ListPods implements KubeAPI.
func (k *Kube) ListPods(ctx context.Context, namespace, selector string) ([]corev1.Pod, error) {
	var list corev1.PodList
	err := k.core.Get().Namespace(namespace).Resource("pods").
		VersionedParams(&metav1.ListOptions{LabelSelector: selector}, parameterCodec).
		Do(ctx).Into(&list)
	if err != nil {
		return nil, err
	}
	return list.Items, nil
}

// PodLog implements KubeAPI.
func (k *Kube) PodLog(ctx context.Context, namespace, pod, container string) (io.ReadCloser, error) {
	return k.core.Get().Namespace(namespace).Resource("pods").Name(pod).SubResource("log").
		VersionedParams(&corev1.PodLogOptions{Container: container}, parameterCodec).
		Stream(ctx)
}

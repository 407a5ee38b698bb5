package sagemaker

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/errdefs"
	"github.com/docker/docker/pkg/jsonmessage"

	"github.com/slipway-ml/slipway/internal/dockerlogs"
)

// hosts returns algo-1..algo-N.
func (r *jobRun) hosts() []string {
	n := max(1, r.job.ResourceConfig.InstanceCount)
	hosts := make([]string, n)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("algo-%d", i+1)
	}
	return hosts
}

func (r *jobRun) streamName(i int) string {
	return fmt.Sprintf("%s/algo-%d-%d", r.name, i+1, r.local.Epoch)
}

func (r *jobRun) labels(host string) map[string]string {
	return map[string]string{LabelLocalAWS: "1", LabelJob: r.name, LabelEndpoint: r.s.cfg.EndpointID, LabelHost: host}
}

// prepare pulls the training image when needed and checks the output bucket.
func (r *jobRun) prepare(ctx context.Context) error {
	ref, always := r.s.cfg.ResolveImage(r.job.AlgorithmSpecification.TrainingImage)
	if !always {
		if _, err := r.s.cfg.Docker.ImageInspect(ctx, ref); err == nil {
			return r.ensureOutputBucket()
		}
	}
	rc, err := r.s.cfg.Docker.ImagePull(ctx, ref, image.PullOptions{})
	if err == nil {
		err = jsonmessage.DisplayJSONMessagesStream(rc, io.Discard, 0, false, nil)
		rc.Close()
	}
	if err != nil {
		return fmt.Errorf("the training image %s could not be pulled: %w", r.job.AlgorithmSpecification.TrainingImage, err)
	}
	return r.ensureOutputBucket()
}

func (r *jobRun) ensureOutputBucket() error {
	bucket, _, err := parseS3(r.job.OutputDataConfig.S3OutputPath)
	if err != nil {
		return err
	}
	return r.s.cfg.Objects.EnsureBucket(bucket)
}

// inputArchive writes what host i finds under /opt/ml when it starts: the
// config files, each channel's objects and the checkpoints.
func (r *jobRun) inputArchive(i int, w io.Writer) error {
	hosts := r.hosts()
	b := newTarBuilder(w)
	j := &r.job
	hp := j.HyperParameters
	if hp == nil {
		hp = map[string]string{}
	}
	if err := b.json("/opt/ml/input/config/hyperparameters.json", hp); err != nil {
		return err
	}
	rc := map[string]any{
		"current_host": hosts[i], "current_instance_type": j.ResourceConfig.InstanceType,
		"current_group_name": "homogeneousCluster", "hosts": hosts, "network_interface_name": "eth0",
		"instance_groups": []map[string]any{{"instance_group_name": "homogeneousCluster",
			"instance_type": j.ResourceConfig.InstanceType, "hosts": hosts}},
	}
	if err := b.json("/opt/ml/input/config/resourceconfig.json", rc); err != nil {
		return err
	}
	idc := map[string]map[string]string{}
	for _, c := range j.InputDataConfig {
		s3 := c.DataSource.S3DataSource
		idc[c.ChannelName] = map[string]string{
			"TrainingInputMode":  cmp(c.InputMode, j.AlgorithmSpecification.TrainingInputMode),
			"S3DistributionType": cmp(s3.S3DataDistributionType, "FullyReplicated"),
			"RecordWrapperType":  cmp(c.RecordWrapperType, "None"),
		}
		if c.ContentType != "" {
			idc[c.ChannelName]["ContentType"] = c.ContentType
		}
		shard := -1
		if s3.S3DataDistributionType == "ShardedByS3Key" {
			shard = i
		}
		if err := r.addPrefix(b, s3.S3URI, "/opt/ml/input/data/"+c.ChannelName, shard, len(hosts)); err != nil {
			return fmt.Errorf("channel %s: %w", c.ChannelName, err)
		}
	}
	if err := b.json("/opt/ml/input/config/inputdataconfig.json", idc); err != nil {
		return err
	}
	if cp := j.CheckpointConfig; cp != nil {
		if err := r.addPrefix(b, cp.S3URI, checkpointPath(cp), -1, 1); err != nil {
			return fmt.Errorf("checkpoints: %w", err)
		}
	}
	for _, d := range []string{"/opt/ml/model", "/opt/ml/output/data", "/opt/ml/code"} {
		if err := b.dir(d); err != nil {
			return err
		}
	}
	return b.close()
}

func checkpointPath(cp *CheckpointConfig) string {
	if cp.LocalPath != "" {
		return cp.LocalPath
	}
	return "/opt/ml/checkpoints"
}

func cmp(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// addPrefix copies the objects under an S3 URI into dir, keeping their
// paths below the prefix. With shard >= 0, host shard of n gets every n-th key.
func (r *jobRun) addPrefix(b *tarBuilder, uri, dir string, shard, n int) error {
	bucket, prefix, err := parseS3(uri)
	if err != nil {
		return err
	}
	// The folder exists even when the prefix is empty, as on SageMaker: a
	// first attempt finds an empty /opt/ml/checkpoints to write into.
	if err := b.dir(dir); err != nil {
		return err
	}
	keys, err := r.s.cfg.Objects.List(bucket, prefix)
	if err != nil {
		return err
	}
	for k, key := range keys {
		if shard >= 0 && k%n != shard || strings.HasSuffix(key, "/") {
			continue
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(key, prefix), "/")
		if rel == "" {
			rel = path.Base(key)
		}
		body, size, err := r.s.cfg.Objects.Get(bucket, key)
		if err != nil {
			return err
		}
		err = b.file(path.Join(dir, rel), body, size)
		body.Close()
		if err != nil {
			return fmt.Errorf("copying s3://%s/%s: %w", bucket, key, err)
		}
	}
	return nil
}

// startContainers creates the network (for several hosts), one container
// per host with its /opt/ml copied in, records them, then starts them.
func (r *jobRun) startContainers(ctx context.Context) error {
	d := r.s.cfg.Docker
	hosts := r.hosts()
	spec := r.job.AlgorithmSpecification
	ref, _ := r.s.cfg.ResolveImage(spec.TrainingImage)
	epoch := time.Now().Unix()
	netName := ""
	if len(hosts) > 1 && !r.job.EnableNetworkIsolation {
		netName = fmt.Sprintf("localaws-%s-%d", r.name, epoch)
		if _, err := d.NetworkCreate(ctx, netName, network.CreateOptions{Labels: r.labels("")}); err != nil {
			return fmt.Errorf("creating the job's network: %w", err)
		}
		r.local.Network = netName
	}
	env := []string{"TRAINING_JOB_NAME=" + r.name, "TRAINING_JOB_ARN=" + r.job.TrainingJobArn}
	for _, k := range sortedKeys(r.job.Environment) {
		env = append(env, k+"="+r.job.Environment[k])
	}
	var ids []string
	for i, host := range hosts {
		cfg := &container.Config{Image: ref, Hostname: host, Env: env, Labels: r.labels(host)}
		if len(spec.ContainerEntrypoint) > 0 {
			cfg.Entrypoint = spec.ContainerEntrypoint
			cfg.Cmd = spec.ContainerArguments
		} else {
			cfg.Cmd = []string{"train"}
		}
		hc := &container.HostConfig{}
		var nc *network.NetworkingConfig
		switch {
		case r.job.EnableNetworkIsolation:
			hc.NetworkMode = "none"
		case netName != "":
			hc.NetworkMode = container.NetworkMode(netName)
			nc = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{netName: {Aliases: []string{host}}}}
		}
		created, err := d.ContainerCreate(ctx, cfg, hc, nc, nil, fmt.Sprintf("localaws-%s-%s-%d", r.name, host, epoch))
		if err != nil {
			r.local.Containers = ids
			return fmt.Errorf("creating the container of %s: %w", host, err)
		}
		ids = append(ids, created.ID)
		if err := r.copyInputs(ctx, created.ID, i); err != nil {
			r.local.Containers = ids
			return err
		}
	}
	r.local.Containers, r.local.Epoch = ids, epoch
	if err := r.s.update(r.name, func(rec *record) { rec.Local = r.local }); err != nil {
		return err
	}
	r.setSecondary(SecondaryTraining, "Training image download completed. Training in progress.")
	for i, id := range ids {
		if err := d.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
			return fmt.Errorf("starting the container of %s: %w", hosts[i], err)
		}
	}
	return nil
}

func (r *jobRun) copyInputs(ctx context.Context, id string, i int) error {
	tmp, err := os.CreateTemp("", "localaws-input-*.tar")
	if err != nil {
		return fmt.Errorf("creating input archive: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if err := r.inputArchive(i, tmp); err != nil {
		return fmt.Errorf("downloading input data: %w", err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := r.s.cfg.Docker.CopyToContainer(ctx, id, "/", tmp, container.CopyToContainerOptions{}); err != nil {
		return fmt.Errorf("copying input data into the container: %w", err)
	}
	return nil
}

// maxEvent is the longest line stored as one log event (CloudWatch Logs
// takes events of up to 256 KiB); a longer one is stored as several.
const maxEvent = 256 << 10

// streamLogs sends a container's lines to its log stream as they come. On a
// re-attach it picks up after the last line it had stored.
func (r *jobRun) streamLogs(ctx context.Context, id, stream string) {
	o := dockerlogs.Options{Timestamps: true, MaxLine: maxEvent}
	if last, ok := r.s.cfg.Logs.Last(LogGroup, stream); ok {
		t := time.UnixMilli(last + 1)
		o.Since = fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond())
	}
	err := dockerlogs.Follow(ctx, r.s.cfg.Docker, id, o, func(l dockerlogs.Line) {
		t, line := time.Now(), l.Text
		if ts, msg, ok := strings.Cut(line, " "); ok {
			if parsed, err := time.Parse(time.RFC3339Nano, ts); err == nil {
				t, line = parsed, msg
			}
		}
		if err := r.s.cfg.Logs.Put(LogGroup, stream, t, line); err != nil {
			r.log.Warn("storing a log line", "err", err)
		}
	})
	if err != nil && ctx.Err() == nil {
		r.log.Warn("following container logs", "err", err)
	}
}

// stopContainers sends SIGTERM, then SIGKILL after the grace period.
func (r *jobRun) stopContainers(ctx context.Context) {
	grace := int(math.Ceil(r.s.cfg.StopGrace.Seconds()))
	for _, id := range r.local.Containers {
		if err := r.s.cfg.Docker.ContainerStop(ctx, id, container.StopOptions{Timeout: &grace}); err != nil && !errdefs.IsNotFound(err) {
			r.log.Warn("stopping container", "err", err)
		}
	}
}

// upload sends algo-1's model, output data and checkpoints to S3 and returns
// the text of its failure file.
func (r *jobRun) upload(ctx context.Context) (string, error) {
	if len(r.local.Containers) == 0 {
		return "", nil
	}
	id := r.local.Containers[0]
	d := r.s.cfg.Docker
	bucket, key, err := parseS3(r.job.OutputDataConfig.S3OutputPath)
	if err != nil {
		return "", err
	}
	base := path.Join(strings.Trim(key, "/"), r.name, "output")
	var errs []error
	failure := ""
	if rc, _, err := d.CopyFromContainer(ctx, id, "/opt/ml/output/failure"); err == nil {
		err = readFailure(rc, func(body io.Reader) error {
			b, err := io.ReadAll(io.LimitReader(body, 1024))
			failure = string(b)
			return err
		})
		rc.Close()
		errs = append(errs, err)
	}
	modelKey := path.Join(base, "model.tar.gz")
	n, err := r.uploadFolder(ctx, id, "/opt/ml/model", bucket, modelKey, true)
	errs = append(errs, err)
	if err == nil && n >= 0 {
		uri := "s3://" + bucket + "/" + modelKey
		errs = append(errs, r.s.update(r.name, func(rec *record) { rec.Job.ModelArtifacts = &ModelArtifacts{S3ModelArtifacts: uri} }))
	}
	_, err = r.uploadFolder(ctx, id, "/opt/ml/output/data", bucket, path.Join(base, "output.tar.gz"), false)
	errs = append(errs, err)
	if cp := r.job.CheckpointConfig; cp != nil {
		errs = append(errs, r.uploadCheckpoints(ctx, id, cp))
	}
	return failure, errors.Join(errs...)
}

// uploadFolder puts a container folder as a gzipped tar; without always, an
// empty folder uploads nothing. It returns the number of files, -1 for none.
func (r *jobRun) uploadFolder(ctx context.Context, id, dir, bucket, key string, always bool) (int, error) {
	rc, _, err := r.s.cfg.Docker.CopyFromContainer(ctx, id, dir)
	if err != nil && !errdefs.IsNotFound(err) {
		return -1, fmt.Errorf("copying %s out of the container: %w", dir, err)
	}
	var src io.Reader
	if err == nil {
		defer rc.Close()
		src = rc
	}
	f, size, n, err := gzipFolder(src)
	if err != nil {
		return -1, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if n == 0 && !always {
		return -1, nil
	}
	if err := r.s.cfg.Objects.Put(bucket, key, f, size); err != nil {
		return -1, err
	}
	return n, nil
}

func (r *jobRun) uploadCheckpoints(ctx context.Context, id string, cp *CheckpointConfig) error {
	bucket, prefix, err := parseS3(cp.S3URI)
	if err != nil {
		return err
	}
	rc, _, err := r.s.cfg.Docker.CopyFromContainer(ctx, id, checkpointPath(cp))
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("copying checkpoints out of the container: %w", err)
	}
	defer rc.Close()
	return containerFiles(rc, func(rel string, hdr *tar.Header, body io.Reader) error {
		return r.s.cfg.Objects.Put(bucket, path.Join(prefix, rel), body, hdr.Size)
	})
}

// cleanup removes the job's containers and network.
func (r *jobRun) cleanup(ctx context.Context) {
	d := r.s.cfg.Docker
	for _, id := range r.local.Containers {
		if err := d.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !errdefs.IsNotFound(err) {
			r.log.Warn("removing container", "err", err)
		}
	}
	if r.local.Network != "" {
		if err := d.NetworkRemove(ctx, r.local.Network); err != nil && !errdefs.IsNotFound(err) {
			r.log.Warn("removing network", "err", err)
		}
	}
}

// parseS3 splits s3://bucket/key.
func parseS3(uri string) (bucket, key string, err error) {
	rest, ok := strings.CutPrefix(uri, "s3://")
	if !ok {
		rest, ok = strings.CutPrefix(uri, "https://")
		if ok {
			_, rest, _ = strings.Cut(rest, "/") // path-style: host/bucket/key
		}
	}
	bucket, key, _ = strings.Cut(rest, "/")
	if !ok || bucket == "" {
		return "", "", fmt.Errorf("parsing S3 URI %q: want s3://bucket/prefix", uri)
	}
	return bucket, key, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

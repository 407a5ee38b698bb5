// Package deploy_test checks the deploy files: the IAM policy holds exactly
// the permissions the SageMaker path needs, the agent image's Dockerfile
// builds a static binary onto an empty base, and that binary runs where
// there is no libc at all (in the tests' busybox image).
package deploy_test

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/slipway-ml/slipway/internal/dockertest"
)

type statement struct {
	Sid       string
	Effect    string
	Action    stringOrList
	Resource  stringOrList
	Condition map[string]map[string]string
}

// stringOrList is an IAM field that is a string or a list of strings.
type stringOrList []string

func (s *stringOrList) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*s = []string{one}
		return nil
	}
	var many []string
	err := json.Unmarshal(b, &many)
	*s = many
	return err
}

func TestIAMPolicyHasExactlyTheNeededActions(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("iam-policy.json")
	if err != nil {
		t.Fatal(err)
	}
	var policy struct {
		Version   string
		Statement []statement
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&policy); err != nil {
		t.Fatalf("iam-policy.json: %v", err)
	}
	if policy.Version != "2012-10-17" {
		t.Errorf("Version: got %q, want 2012-10-17", policy.Version)
	}
	want := []string{
		"sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob",
		"sagemaker:ListTrainingJobs", "sagemaker:AddTags",
		"logs:DescribeLogStreams", "logs:GetLogEvents",
		"ecr:GetAuthorizationToken", "ecr:BatchCheckLayerAvailability", "ecr:InitiateLayerUpload",
		"ecr:UploadLayerPart", "ecr:CompleteLayerUpload", "ecr:PutImage", "ecr:BatchGetImage",
		"ecr:DescribeImages", "ecr:DescribeRepositories", "ecr:CreateRepository",
		"s3:ListBucket", "s3:GetBucketLocation", "s3:GetObject", "s3:PutObject", "s3:DeleteObject",
		"iam:PassRole",
	}
	var got []string
	for _, s := range policy.Statement {
		if s.Effect != "Allow" {
			t.Errorf("statement %s: Effect %q, want Allow", s.Sid, s.Effect)
		}
		for _, a := range s.Action {
			if strings.Contains(a, "*") {
				t.Errorf("statement %s: wildcard action %q", s.Sid, a)
			}
			got = append(got, a)
		}
		for _, r := range s.Resource {
			switch {
			case strings.HasPrefix(r, "arn:aws:s3:::") && !strings.Contains(r, "OUTPUT_BUCKET") && !strings.Contains(r, "CONTEXT_BUCKET"):
				t.Errorf("statement %s: S3 resource %q: want only the output and context buckets", s.Sid, r)
			case r == "*" && slices.ContainsFunc(s.Action, func(a string) bool { return !strings.HasPrefix(a, "sagemaker:") && a != "ecr:GetAuthorizationToken" }):
				t.Errorf("statement %s: Resource * for %v: only SageMaker and the ECR token may have it", s.Sid, s.Action)
			}
		}
		if slices.Contains(s.Action, "iam:PassRole") {
			if len(s.Action) != 1 || len(s.Resource) != 1 || !strings.HasPrefix(s.Resource[0], "arn:aws:iam::ACCOUNT_ID:role/") {
				t.Errorf("PassRole statement: actions %v on %v; want PassRole alone on the execution role", s.Action, s.Resource)
			}
			if got := s.Condition["StringEquals"]["iam:PassedToService"]; got != "sagemaker.amazonaws.com" {
				t.Errorf("PassRole condition iam:PassedToService: got %q, want sagemaker.amazonaws.com", got)
			}
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("actions:\n got %v\nwant %v", got, want)
	}
}

func TestDockerfileBuildsAStaticBinaryOnAnEmptyBase(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("agent.Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var froms, last []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "FROM ") {
			froms = append(froms, line)
			last = nil
		}
		last = append(last, line)
	}
	if len(froms) < 2 || froms[len(froms)-1] != "FROM scratch" {
		t.Fatalf("stages %v: want a build stage, then FROM scratch", froms)
	}
	final := strings.Join(last, "\n")
	for _, want := range []string{"COPY --from=build /out/ /", "USER 65532:65532", `ENTRYPOINT ["/slipway", "agent"]`} {
		if !strings.Contains(final, want) {
			t.Errorf("final stage lacks %q:\n%s", want, final)
		}
	}
	for _, want := range []string{"CGO_ENABLED=0 go build", "./cmd/slipway", "ca-certificates.crt /out/etc/ssl/certs/"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("build stage lacks %q", want)
		}
	}
}

// TestBuildsWithoutCgo checks, without compiling, that every package of
// the binary builds with CGO_ENABLED=0, as the Dockerfile builds it.
func TestBuildsWithoutCgo(t *testing.T) {
	t.Parallel()
	list := exec.Command("go", "list", "-e", "-deps", "-f", "{{.ImportPath}}\t{{if .Error}}{{.Error}}{{end}}{{range .DepsErrors}}{{.}}{{end}}\t{{.CgoFiles}}", "../cmd/slipway")
	list.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := list.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		path, rest, _ := strings.Cut(line, "\t")
		errs, cgo, _ := strings.Cut(rest, "\t")
		if errs != "" || cgo != "[]" {
			t.Errorf("%s with CGO_ENABLED=0: errors %q, cgo files %s; want none", path, errs, cgo)
		}
		n++
	}
	if n < 50 {
		t.Errorf("go list found %d packages; want the whole binary's", n)
	}
}

// TestStaticBinaryRunsWithoutLibc builds the binary as the Dockerfile does
// and runs it in the busybox image, which has no libc (no Docker Hub here
// for the Dockerfile's own build stage). A CGO_ENABLED=0 build compiles
// every package again, minutes on a cold cache, so it runs only when
// SLIPWAY_TEST_AGENT_IMAGE=1.
func TestStaticBinaryRunsWithoutLibc(t *testing.T) {
	if os.Getenv("SLIPWAY_TEST_AGENT_IMAGE") != "1" {
		t.Skip("set SLIPWAY_TEST_AGENT_IMAGE=1 to build the static binary and run it in busybox")
	}
	cli := dockertest.Client(t)
	bin := filepath.Join(t.TempDir(), "slipway")
	// Without the Dockerfile's -trimpath, which would miss the build cache
	// for every package; static-ness comes from CGO_ENABLED=0 alone.
	build := exec.Command("go", "build", "-ldflags=-s -w", "-o", bin, "../cmd/slipway")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	libs, _ := f.ImportedLibraries()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("binary has an ELF interpreter: want it static")
		}
	}
	f.Close()
	if len(libs) > 0 {
		t.Errorf("binary needs %v: want no shared libraries", libs)
	}

	ctx := context.Background()
	base := dockertest.BaseImage(t, cli)
	created, err := cli.ContainerCreate(ctx,
		&container.Config{Image: base, Cmd: []string{"/slipway", "agent", "--help"}, User: "65532:65532",
			Labels: map[string]string{"slipway.test": "deploy"}},
		&container.HostConfig{Binds: []string{bin + ":/slipway:ro"}}, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cli.ContainerRemove(context.Background(), created.ID, container.RemoveOptions{Force: true})
	})
	waitCh, errCh := cli.ContainerWait(ctx, created.ID, container.WaitConditionNextExit)
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	var code int64
	select {
	case w := <-waitCh:
		code = w.StatusCode
	case err := <-errCh:
		t.Fatal(err)
	}
	logs, err := cli.ContainerLogs(ctx, created.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	var stdout, stderr bytes.Buffer
	if _, err := stdcopy.StdCopy(&stdout, &stderr, logs); err != nil {
		t.Fatal(err)
	}
	if code != 0 || !strings.Contains(stdout.String(), "Run an agent") {
		t.Errorf("slipway agent --help in busybox: exit %d, stdout %q, stderr %q; want 0 and the help", code, stdout.String(), stderr.String())
	}
}

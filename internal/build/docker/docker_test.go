package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/client"

	slbuild "github.com/slipway-ml/slipway/internal/build"
	"github.com/slipway-ml/slipway/internal/build/buildtest"
	"github.com/slipway-ml/slipway/internal/dockertest"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/registry/oci"
)

type env struct {
	cli  *client.Client
	reg  *buildtest.Registry
	dst  *oci.Registry
	b    *Builder
	base string
}

func setup(t *testing.T) env {
	t.Helper()
	cli := dockertest.Client(t)
	base := dockertest.BaseImage(t, cli)
	reg := buildtest.NewRegistry(t)
	dst, err := oci.New(oci.Config{Repository: reg.Host + "/jobs/train"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{Client: cli, LocalRepository: "slipway-buildtest/" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { buildtest.RemoveImages(cli, b.cfg.LocalRepository, reg.Host+"/") })
	return env{cli: cli, reg: reg, dst: dst, b: b, base: base}
}

func code(base, version string) map[string]string {
	return map[string]string{
		// RUN comes before COPY, so a code change rebuilds (and uploads) only the COPY layer.
		"Dockerfile":  "FROM " + base + "\nRUN echo built > /built.txt\nWORKDIR /app\nCOPY . /app\nENTRYPOINT [\"sh\", \"/app/run.sh\"]\n",
		"run.sh":      "echo \"$(cat /built.txt) version=$(cat version.txt)\"\n",
		"version.txt": version,
	}
}

// TestBuildPushSkip: build and push streaming the output; an unchanged
// relaunch builds nothing and uploads nothing; one changed file gives a new
// tag and uploads only the changed layer (and the config); the image runs.
func TestBuildPushSkip(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	logs := &buildtest.Lines{}
	req := slbuild.Request{Context: buildtest.Context(t, code(e.base, "1")), Registry: e.dst, Log: logs.Add}
	first, err := e.b.Build(ctx, req)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, logs)
	}
	if first.Skipped || first.Builder != "docker" || !strings.HasPrefix(first.Image, e.reg.Host+"/jobs/train@sha256:") {
		t.Errorf("first build = %+v, want pushed by digest to %s/jobs/train", first, e.reg.Host)
	}
	for _, want := range []string{"Step 1/6 : FROM", "Successfully built", "Pushed"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("build log lacks %q:\n%s", want, logs)
		}
	}

	n := len(e.reg.Uploads())
	again, err := e.b.Build(ctx, slbuild.Request{Context: buildtest.Context(t, code(e.base, "1")), Registry: e.dst})
	if err != nil {
		t.Fatal(err)
	}
	if !again.Skipped || again.Image != first.Image {
		t.Errorf("unchanged relaunch = %+v, want skipped with %s", again, first.Image)
	}
	if up := e.reg.Uploads()[n:]; len(up) != 0 {
		t.Errorf("unchanged relaunch uploaded %s, want nothing", buildtest.Sprint(up))
	}

	n = len(e.reg.Uploads())
	second, err := e.b.Build(ctx, slbuild.Request{Context: buildtest.Context(t, code(e.base, "2")), Registry: e.dst})
	if err != nil {
		t.Fatal(err)
	}
	if second.Skipped || second.Tag == first.Tag {
		t.Errorf("changed file: %+v, want a new build and tag", second)
	}
	if up := e.reg.Uploads()[n:]; len(up) != 2 {
		t.Errorf("changed file uploaded %s, want 2 blobs: the COPY layer and the config", buildtest.Sprint(up))
	}
	if out := strings.TrimSpace(buildtest.Run(t, e.cli, second.Image, false)); out != "built version=2" {
		t.Errorf("the image printed %q, want %q", out, "built version=2")
	}
}

// TestGeneratedPython builds a Dockerfile-less Python project on a base
// whose pip is a stand-in (no PyPI here) and checks that the dependencies
// were "installed" and the code sits in /app.
func TestGeneratedPython(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	pybase := e.b.cfg.LocalRepository + "-pybase:1"
	baseCtx := buildtest.Context(t, map[string]string{
		"Dockerfile": "FROM " + e.base + "\nCOPY pip.sh /bin/pip\n",
		"pip.sh":     "#!/bin/sh\necho \"pip $*\" > /pip.log\ncat requirements.txt >> /pip.log\n",
	})
	resp, err := e.cli.ImageBuild(ctx, bytes.NewReader(baseCtx), build.ImageBuildOptions{Tags: []string{pybase}, Remove: true, Version: build.BuilderV1})
	if err != nil {
		t.Fatal(err)
	}
	if err := stream(resp.Body, func(string) {}, nil); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	logs := &buildtest.Lines{}
	res, err := e.b.Build(ctx, slbuild.Request{
		Context:   buildtest.Context(t, map[string]string{"requirements.txt": "numpy==2.0\n", "train.py": "print(1)\n"}),
		BaseImage: pybase, Entrypoint: []string{"sh", "-c", "cat /pip.log; ls /app"}, Log: logs.Add,
	})
	if err != nil {
		t.Fatalf("build: %v\n%s", err, logs)
	}
	if !strings.HasPrefix(res.Image, e.b.cfg.LocalRepository+":") {
		t.Errorf("image %q, want it kept locally in %s", res.Image, e.b.cfg.LocalRepository)
	}
	out := buildtest.Run(t, e.cli, res.Image, false)
	want := "pip install --no-cache-dir -r requirements.txt\nnumpy==2.0\nrequirements.txt\ntrain.py\n"
	if out != want {
		t.Errorf("the image printed %q, want %q (no generated Dockerfile copied in)", out, want)
	}
	again, err := e.b.Build(ctx, slbuild.Request{
		Context:   buildtest.Context(t, map[string]string{"requirements.txt": "numpy==2.0\n", "train.py": "print(1)\n"}),
		BaseImage: pybase, Entrypoint: []string{"sh", "-c", "cat /pip.log; ls /app"},
	})
	if err != nil || !again.Skipped || again.Image != res.Image {
		t.Errorf("local rebuild = %+v, %v; want skipped with %s", again, err, res.Image)
	}
}

func TestBuildFailures(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	_, err := e.b.Build(ctx, slbuild.Request{Context: buildtest.Context(t, map[string]string{
		"Dockerfile": "FROM " + e.base + "\nRUN echo about to fail && false\n"})})
	if err == nil || !strings.Contains(err.Error(), "returned a non-zero code") {
		t.Errorf("failing RUN: got %v, want the engine's error", err)
	}
	_, err = e.b.Build(ctx, slbuild.Request{Timeout: time.Second, Context: buildtest.Context(t, map[string]string{
		"Dockerfile": "FROM " + e.base + "\nRUN sleep 60\n"})})
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("slow build: got %v, want a timeout", err)
	}
	_, err = e.b.Build(ctx, slbuild.Request{Context: buildtest.Context(t, map[string]string{"main.go": "package main"})})
	if !errors.Is(err, slbuild.ErrNoDockerfile) || !errors.Is(err, job.ErrInvalid) {
		t.Errorf("no Dockerfile: got %v, want ErrNoDockerfile", err)
	}
}

func TestStream(t *testing.T) {
	t.Parallel()
	in := `{"stream":"Step 1/2 : FROM x\n"}{"status":"Pushing","id":"abc","progressDetail":{"current":1,"total":2},"progress":"[=>  ]"}` +
		`{"status":"Pushed","id":"abc"}{"aux":{"Tag":"t","Digest":"sha256:ff","Size":1}}`
	var lines []string
	var aux string
	if err := stream(strings.NewReader(in), func(l string) { lines = append(lines, l) }, func(m json.RawMessage) { aux = string(m) }); err != nil {
		t.Fatal(err)
	}
	if strings.Join(lines, "|") != "Step 1/2 : FROM x|abc: Pushed" || !strings.Contains(aux, "sha256:ff") {
		t.Errorf("lines %q aux %q, want the step and the pushed status, and the digest", lines, aux)
	}
	err := stream(strings.NewReader(`{"errorDetail":{"message":"boom"},"error":"boom"}`), func(string) {}, nil)
	if err == nil || err.Error() != "boom" {
		t.Errorf("error message: got %v, want boom", err)
	}
	if err := stream(io.MultiReader(strings.NewReader("{")), func(string) {}, nil); err == nil {
		t.Error("truncated stream: no error")
	}
}

package baseimage_test

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/slipway-ml/slipway/internal/baseimage"
	"github.com/slipway-ml/slipway/internal/dockertest"
)

func TestBusyboxRootfsHasShell(t *testing.T) {
	t.Parallel()
	b, err := baseimage.BusyboxRootfs(baseimage.BusyboxPath)
	if err != nil {
		t.Skipf("no static busybox: %v", err)
	}
	tr := tar.NewReader(bytes.NewReader(b))
	links := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		links[h.Name] = h.Linkname
	}
	if got := links["bin/sh"]; got != "busybox" {
		t.Fatalf("bin/sh links to %q, want busybox", got)
	}
}

func TestEnsureImportsImage(t *testing.T) {
	cli := dockertest.Client(t)
	ref, err := baseimage.Ensure(context.Background(), cli)
	if err != nil {
		t.Fatal(err)
	}
	img, err := cli.ImageInspect(context.Background(), ref)
	if err != nil {
		t.Fatalf("inspecting %s after Ensure: %v", ref, err)
	}
	if len(img.Config.Cmd) == 0 || img.Config.Cmd[0] != "/bin/sh" {
		t.Fatalf("image cmd = %v, want [/bin/sh]", img.Config.Cmd)
	}
}

// Package baseimage builds a tiny base image, busybox on its own, from the
// host's static busybox (Debian's busybox-static), for the demo and the tests:
// no public registry is reachable here to pull one from.
package baseimage

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
)

// Busybox is the tag of the image that Ensure builds.
const Busybox = "slipway/busybox:latest"

// BusyboxPath is where Debian's busybox-static puts its binary.
const BusyboxPath = "/bin/busybox"

var mu sync.Mutex

// Ensure imports the busybox image into the engine unless it is there, and
// returns its tag.
//
// Other processes may ensure it at the same time (test packages run in
// parallel): the check and the import hold a file lock that they take too.
// Two imports would tag two images in turn, and the first, untagged once the
// second lands, goes with the next image built on it that is removed
// (removing an image also removes its untagged parents), under the builds
// that already resolved FROM to it ("unable to find image sha256:…").
func Ensure(ctx context.Context, cli client.APIClient) (string, error) {
	mu.Lock()
	defer mu.Unlock()
	unlock, err := lockFile(filepath.Join(os.TempDir(), "slipway-baseimage.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := cli.ImageInspect(ctx, Busybox); err == nil {
		return Busybox, nil
	}
	rootfs, err := BusyboxRootfs(BusyboxPath)
	if err != nil {
		return "", fmt.Errorf("making busybox rootfs (install busybox-static): %w", err)
	}
	rc, err := cli.ImageImport(ctx, image.ImportSource{Source: bytes.NewReader(rootfs), SourceName: "-"}, Busybox,
		image.ImportOptions{Changes: []string{`ENV PATH=/bin:/usr/bin:/sbin:/usr/sbin`, `CMD ["/bin/sh"]`}})
	if err != nil {
		return "", fmt.Errorf("importing %s: %w", Busybox, err)
	}
	defer rc.Close()
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return "", fmt.Errorf("importing %s: %w", Busybox, err)
	}
	return Busybox, nil
}

// lockFile takes an exclusive lock on the file at path, made if missing, and
// returns what releases it.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, fmt.Errorf("locking the base image's import: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking the base image's import: %w", err)
	}
	return func() { f.Close() }, nil // closing the file releases the lock
}

// applets are the busybox commands linked into the image.
var applets = []string{"sh", "echo", "cat", "ls", "sleep", "env", "mkdir", "rm", "cp", "mv", "tar", "gzip",
	"sed", "grep", "head", "tail", "wc", "true", "false", "printf", "test", "[", "kill", "ps", "date", "touch",
	"nc", "wget", "hostname", "id", "pwd", "find", "xargs", "tr", "cut", "sort", "uname", "seq", "awk"}

// BusyboxRootfs returns an uncompressed tar of a root filesystem holding the
// static busybox at path, linked as /bin/sh and the common applets.
func BusyboxRootfs(path string) ([]byte, error) {
	bin, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	for _, d := range []string{"bin/", "tmp/", "etc/", "usr/", "usr/bin/", "root/"} {
		mode := int64(0o755)
		if d == "tmp/" {
			mode = 0o1777
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: mode, ModTime: now}); err != nil {
			return nil, err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bin)), ModTime: now}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	for _, a := range applets {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", ModTime: now}); err != nil {
			return nil, err
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
		"etc/group":  "root:x:0:\n",
	}
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body)), ModTime: now}); err != nil {
			return nil, err
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

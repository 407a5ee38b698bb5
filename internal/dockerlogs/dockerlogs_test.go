package dockerlogs

import (
	"bytes"
	"context"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/slipway-ml/slipway/internal/dockertest"
)

// TestFollowShortLivedContainer runs a real container that writes to both
// streams, a long line and a last line without newline, and exits at once.
func TestFollowShortLivedContainer(t *testing.T) {
	t.Parallel()
	cli := dockertest.Client(t)
	img := dockertest.BaseImage(t, cli)
	ctx := context.Background()
	script := `echo one; echo two >&2; printf '%0100d\n' 0; printf last`
	created, err := cli.ContainerCreate(ctx, &container.Config{Image: img, Cmd: []string{"sh", "-c", script},
		Labels: map[string]string{"slipway.test": "dockerlogs"}}, nil, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.ContainerRemove(context.Background(), created.ID, container.RemoveOptions{Force: true}) })
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	// The engine reads the two streams from separate pipes, so only the
	// order within each is kept.
	var stdout, stderr []string
	err = Follow(ctx, cli, created.ID, Options{MaxLine: 64}, func(l Line) {
		if l.Stderr {
			stderr = append(stderr, l.Text)
		} else {
			stdout = append(stdout, l.Text)
		}
	})
	if err != nil {
		t.Fatalf("Follow: %v", err)
	}
	zeros := strings.Repeat("0", 100)
	if want := []string{"one", zeros[:64], zeros[64:], "last"}; !reflect.DeepEqual(stdout, want) {
		t.Errorf("stdout: got %q, want %q", stdout, want)
	}
	if want := []string{"two"}; !reflect.DeepEqual(stderr, want) {
		t.Errorf("stderr: got %q, want %q", stderr, want)
	}
}

// cutShort stands in for the engine when it ends a followed stream early,
// a race the real engine shows only now and then: the followed read
// returns the first part of the log, the plain read all of it.
type cutShort struct {
	all, followed []byte
}

func (c cutShort) ContainerLogs(_ context.Context, _ string, o container.LogsOptions) (io.ReadCloser, error) {
	if o.Follow {
		return io.NopCloser(bytes.NewReader(c.followed)), nil
	}
	return io.NopCloser(bytes.NewReader(c.all)), nil
}

func (cutShort) ContainerWait(context.Context, string, container.WaitCondition) (<-chan container.WaitResponse, <-chan error) {
	ok := make(chan container.WaitResponse, 1)
	ok <- container.WaitResponse{}
	return ok, nil
}

func framed(t *testing.T, parts ...string) []byte {
	t.Helper()
	var b bytes.Buffer
	out, errw := stdcopy.NewStdWriter(&b, stdcopy.Stdout), stdcopy.NewStdWriter(&b, stdcopy.Stderr)
	for _, p := range parts {
		w := out
		if strings.HasPrefix(p, "E:") {
			w, p = errw, p[2:]
		}
		if _, err := w.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// TestFollowCatchesUpAfterACutStream checks that the lines a followed
// stream missed arrive once, and that none arrives twice, even when the
// stream was cut in the middle of a line.
func TestFollowCatchesUpAfterACutStream(t *testing.T) {
	t.Parallel()
	parts := []string{"a\n", "E:b\n", "c-st", "art\nd\n", "E:got hello\n", "tail"}
	c := cutShort{all: framed(t, parts...), followed: framed(t, parts[:3]...)}
	var got []string
	err := Follow(context.Background(), c, "x", Options{}, func(l Line) {
		if l.Stderr {
			l.Text = "E:" + l.Text
		}
		got = append(got, l.Text)
	})
	if err != nil {
		t.Fatalf("Follow: %v", err)
	}
	want := []string{"a", "E:b", "c-start", "d", "E:got hello", "tail"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestCutterIgnoresWriteBoundaries checks that a line is cut the same way
// whichever way its bytes arrive.
func TestCutterIgnoresWriteBoundaries(t *testing.T) {
	t.Parallel()
	input := "abcd\r\n" + "efgh\n" + "ijklmnopq\n\n" + "rs"
	cut := func(chunks []string) []string {
		var got []string
		w := &cutter{max: 4, emit: func(s string) { got = append(got, s) }}
		for _, c := range chunks {
			w.Write([]byte(c))
		}
		w.flush()
		return got
	}
	whole := cut([]string{input})
	want := []string{"abcd", "efgh", "ijkl", "mnop", "q", "", "rs"}
	if !reflect.DeepEqual(whole, want) {
		t.Fatalf("one write: got %q, want %q", whole, want)
	}
	var bytewise []string
	for _, r := range input {
		bytewise = append(bytewise, string(r))
	}
	if got := cut(bytewise); !reflect.DeepEqual(got, want) {
		t.Errorf("byte by byte: got %q, want %q", got, want)
	}
}

// FuzzCutter checks that any output, cut into two writes anywhere, gives
// the same lines as one write, none longer than max, with no byte lost but
// the line ends.
func FuzzCutter(f *testing.F) {
	f.Add("a\r\nbcdef\n\r\r\ng", 3, 4)
	f.Add("", 1, 0)
	f.Fuzz(func(t *testing.T, input string, max, at int) {
		if max < 1 || max > 64 || at < 0 || at > len(input) {
			t.Skip()
		}
		cut := func(chunks ...string) []string {
			var got []string
			w := &cutter{max: max, emit: func(s string) { got = append(got, s) }}
			for _, c := range chunks {
				w.Write([]byte(c))
			}
			w.flush()
			return got
		}
		whole, split := cut(input), cut(input[:at], input[at:])
		if !reflect.DeepEqual(whole, split) {
			t.Fatalf("one write: %q, two writes at %d: %q", whole, at, split)
		}
		for _, l := range whole {
			if len(l) > max {
				t.Fatalf("line %q is longer than %d", l, max)
			}
		}
		kept := strings.NewReplacer("\r\n", "", "\n", "").Replace(input)
		if got := strings.NewReplacer("\r\n", "", "\n", "").Replace(strings.Join(whole, "")); got != kept {
			t.Fatalf("bytes: got %q, want %q", got, kept)
		}
	})
}

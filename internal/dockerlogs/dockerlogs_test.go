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

// engine stands in for the engine's log reads, to show both ways a
// stream's last line without newline may come: the engine here drops it
// from a followed read every time (moby#43860), but another may not.
type engine struct {
	followed, tail []byte
	asked          []container.LogsOptions
}

func (e *engine) ContainerLogs(_ context.Context, _ string, o container.LogsOptions) (io.ReadCloser, error) {
	e.asked = append(e.asked, o)
	if o.Follow {
		return io.NopCloser(bytes.NewReader(e.followed)), nil
	}
	return io.NopCloser(bytes.NewReader(e.tail)), nil
}

func (*engine) ContainerWait(context.Context, string, container.WaitCondition) (<-chan container.WaitResponse, <-chan error) {
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

// TestFollowTakesTheLastLineOnce checks that a last line without newline
// arrives once, whether the followed read had it or not, and that lines
// with a newline are taken from the followed read alone.
func TestFollowTakesTheLastLineOnce(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		followed, tail []string
		want           []string
	}{
		{"dropped by the follow", []string{"a\n", "E:b\n", "done\n"}, []string{"done\n", "tail"}, []string{"a", "E:b", "done", "tail"}},
		{"both streams dropped", []string{"a\n"}, []string{"out", "E:err"}, []string{"a", "out", "E:err"}},
		{"delivered by the follow", []string{"a\n", "tail"}, []string{"a\n", "tail"}, []string{"a", "tail"}},
		{"every line ends", []string{"a\n", "E:b\n"}, []string{"a\n", "E:b\n"}, []string{"a", "E:b"}},
	}
	for _, tc := range tests {
		e := &engine{followed: framed(t, tc.followed...), tail: framed(t, tc.tail...)}
		var got []string
		err := Follow(context.Background(), e, "x", Options{}, func(l Line) {
			if l.Stderr {
				l.Text = "E:" + l.Text
			}
			got = append(got, l.Text)
		})
		if err != nil {
			t.Fatalf("%s: Follow: %v", tc.name, err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
		for _, o := range e.asked[1:] {
			if o.Follow || o.Tail != "2" {
				t.Errorf("%s: read after the follow: %+v, want the last 2 entries only", tc.name, o)
			}
		}
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

package build

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/slipway-ml/slipway/internal/job"
)

// tarOf makes a context tar of name→body, gzipped when gz is set.
func tarOf(t testing.TB, gz bool, files map[string]string) []byte {
	t.Helper()
	var fs []File
	for n, b := range files {
		fs = append(fs, File{Name: n, Type: tar.TypeReg, Mode: 0o644, Body: []byte(b)})
	}
	c := &Context{}
	b, err := c.Tar(fs...)
	if err != nil {
		t.Fatal(err)
	}
	if !gz {
		return b
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func TestParseDockerfile(t *testing.T) {
	t.Parallel()
	ins, err := ParseDockerfile("# syntax=x\nARG V=1\nfrom base:1 AS b\n\nRUN a \\\n  # note\n  && b\nCOPY . /app\n")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, in := range ins {
		got = append(got, in.Cmd+"|"+in.Args)
	}
	want := []string{"ARG|V=1", "FROM|base:1 AS b", "RUN|a && b", "COPY|. /app"}
	if strings.Join(got, ";") != strings.Join(want, ";") {
		t.Errorf("got %q, want %q", got, want)
	}
	if ins[2].Line != 5 {
		t.Errorf("RUN line = %d, want 5", ins[2].Line)
	}
	for _, bad := range []string{"", "# only\n", "COPY . /\n", "FROM\n", "FROM x\nRU-N y\n"} {
		if _, err := ParseDockerfile(bad); !errors.Is(err, job.ErrInvalid) {
			t.Errorf("ParseDockerfile(%q) error = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestBases(t *testing.T) {
	t.Parallel()
	ins, err := ParseDockerfile("FROM --platform=linux/amd64 golang:1 AS build\nRUN x\nFROM scratch\nFROM build\nFROM reg.example/py:3\n")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(Bases(ins), ","); got != "golang:1,reg.example/py:3" {
		t.Errorf("Bases = %q, want golang:1,reg.example/py:3", got)
	}
}

func TestGenerate(t *testing.T) {
	t.Parallel()
	read := func(files map[string]string) *Context {
		c, err := ReadContext(tarOf(t, true, files))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tests := []struct {
		name  string
		files map[string]string
		req   Request
		want  []string // lines the Dockerfile must hold
		err   error
	}{
		{"requirements", map[string]string{"requirements.txt": "numpy", "train.py": ""}, Request{BaseImage: "py:3"},
			[]string{"FROM py:3", "RUN pip install --no-cache-dir -r requirements.txt", "COPY . /app", `ENTRYPOINT ["python","train.py"]`}, nil},
		{"pyproject", map[string]string{"pyproject.toml": "", "main.py": ""}, Request{BaseImage: "py:3"},
			[]string{"RUN pip install --no-cache-dir .", `ENTRYPOINT ["python","main.py"]`}, nil},
		{"deps in base", map[string]string{"requirements.txt": ""}, Request{BaseImage: "py:3", DepsInBase: true, Entrypoint: []string{"sh", "run.sh"}},
			[]string{"COPY . /app", `ENTRYPOINT ["sh","run.sh"]`}, nil},
		{"not python", map[string]string{"main.go": ""}, Request{BaseImage: "py:3"}, nil, ErrNoDockerfile},
		{"no base", map[string]string{"requirements.txt": ""}, Request{}, nil, ErrNoDockerfile},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := Generate(read(tc.files), tc.req)
			if tc.err != nil {
				if !errors.Is(err, tc.err) || !errors.Is(err, job.ErrInvalid) || !strings.Contains(err.Error(), "add a Dockerfile") {
					t.Errorf("got %v, want %v wrapping ErrInvalid and saying what to add", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w+"\n") {
					t.Errorf("generated Dockerfile lacks %q:\n%s", w, got)
				}
			}
			if tc.req.DepsInBase && strings.Contains(got, "RUN") {
				t.Errorf("deps in base, yet the Dockerfile runs something:\n%s", got)
			}
		})
	}
}

func TestTag(t *testing.T) {
	t.Parallel()
	tag := func(gz bool, files map[string]string, platform string, bases ...string) string {
		p, err := Prepare(Request{Context: tarOf(t, gz, files), Registry: nopRegistry{}, Platform: platform})
		if err != nil {
			t.Fatal(err)
		}
		return p.Tag(bases)
	}
	files := map[string]string{"Dockerfile": "FROM b\nCOPY . /app\n", "a.py": "1"}
	base := tag(true, files, "", "sha256:1")
	if len(base) != 64 {
		t.Errorf("tag %q: want 64 hex digits", base)
	}
	if got := tag(false, files, "linux/amd64", "sha256:1"); got != base {
		t.Errorf("same context uncompressed: tag %s, want %s", got, base)
	}
	changed := map[string]string{"Dockerfile": files["Dockerfile"], "a.py": "2"}
	otherDF := map[string]string{"Dockerfile": "FROM b\nCOPY . /code\n", "a.py": "1"}
	for name, got := range map[string]string{
		"file changed":       tag(true, changed, "", "sha256:1"),
		"dockerfile changed": tag(true, otherDF, "", "sha256:1"),
		"base changed":       tag(true, files, "", "sha256:2"),
		"platform changed":   tag(true, files, "linux/arm64", "sha256:1"),
	} {
		if got == base {
			t.Errorf("%s: tag unchanged", name)
		}
	}
}

func TestReadContextDockerignore(t *testing.T) {
	t.Parallel()
	c, err := ReadContext(tarOf(t, false, map[string]string{".dockerignore": "*.bin", "w.bin": "x", "./a.py": "1", "/abs.py": "2"}))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range c.Files {
		got = append(got, f.Name)
	}
	if strings.Join(got, ",") != ".dockerignore,a.py,abs.py" {
		t.Errorf("files = %v, want .dockerignore, a.py, abs.py", got)
	}
	if _, err := ReadContext([]byte("\x1f\x8bnot gzip")); !errors.Is(err, job.ErrInvalid) {
		t.Errorf("bad gzip: got %v, want ErrInvalid", err)
	}
}

type nopRegistry struct{ err error }

func (r nopRegistry) Repository(context.Context) (string, error) { return "reg.example/x", r.err }
func (r nopRegistry) Exists(context.Context, string) (string, bool, error) {
	return "sha256:ab", r.err == nil, r.err
}
func (r nopRegistry) Auth(context.Context) (authn.Authenticator, error) { return authn.Anonymous, nil }

type fakeBuilder struct {
	name  string
	fits  error
	calls int
}

func (f *fakeBuilder) Fits(Request) error { return f.fits }
func (f *fakeBuilder) Build(context.Context, Request) (Result, error) {
	f.calls++
	return Result{Builder: f.name}, nil
}

func TestAuto(t *testing.T) {
	t.Parallel()
	tests := []struct {
		fits error
		want string
	}{
		{nil, "fast"},
		{ErrNotFit, "general"},
	}
	for _, tc := range tests {
		fast, general := &fakeBuilder{name: "fast", fits: tc.fits}, &fakeBuilder{name: "general"}
		res, err := Auto{Fast: fast, General: general}.Build(context.Background(), Request{})
		if err != nil || res.Builder != tc.want {
			t.Errorf("fits %v: built by %q (%v), want %q", tc.fits, res.Builder, err, tc.want)
		}
	}
	fast := &fakeBuilder{fits: ErrNoDockerfile}
	general := &fakeBuilder{}
	if _, err := (Auto{Fast: fast, General: general}).Build(context.Background(), Request{}); !errors.Is(err, ErrNoDockerfile) || general.calls != 0 {
		t.Errorf("a context error: got %v and %d general builds, want ErrNoDockerfile and none", err, general.calls)
	}
}

func TestSkip(t *testing.T) {
	t.Parallel()
	var logs []string
	req := Request{Registry: nopRegistry{}, Log: func(l string) { logs = append(logs, l) }}
	res, ok := Skip(context.Background(), req, "0123456789abcdef", "oci")
	if !ok || !res.Skipped || res.Image != "reg.example/x@sha256:ab" {
		t.Errorf("Skip = %+v, %v; want skipped reg.example/x@sha256:ab", res, ok)
	}
	req.Registry = nopRegistry{err: errors.New("down")}
	if _, ok := Skip(context.Background(), req, "0123456789abcdef", "oci"); ok {
		t.Error("Skip with the registry down: skipped, want a build")
	}
	if len(logs) != 2 || !strings.Contains(logs[0], "skipping") || !strings.Contains(logs[1], "building") {
		t.Errorf("logs = %q, want a skip then a build note", logs)
	}
}

func FuzzParseDockerfile(f *testing.F) {
	f.Add("FROM a\nCOPY . /app\n")
	f.Add("ARG x\nFROM a AS b \\\n\nRUN y\n")
	f.Fuzz(func(t *testing.T, s string) {
		ins, err := ParseDockerfile(s)
		if err != nil {
			if !errors.Is(err, job.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		for _, in := range ins {
			if in.Cmd == "" || in.Args == "" || in.Line < 1 {
				t.Fatalf("bad instruction %+v from %q", in, s)
			}
		}
		_ = Bases(ins)
	})
}

func FuzzParsePlatform(f *testing.F) {
	f.Add("linux/amd64")
	f.Add("linux/arm/v7")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePlatform(s)
		if err == nil && p.String() != s {
			t.Fatalf("ParsePlatform(%q).String() = %q", s, p.String())
		}
	})
}

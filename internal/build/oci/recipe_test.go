package oci

import (
	"archive/tar"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/build"
	"github.com/slipway-ml/slipway/internal/job"
)

func TestLayerFiles(t *testing.T) {
	t.Parallel()
	ctx := &build.Context{}
	for _, n := range []string{"a.py", "conf/x.yaml", "conf/y.yaml", "src1/m.py", "src2/n.py"} {
		ctx.Files = append(ctx.Files, build.File{Name: n, Type: tar.TypeReg, Mode: 0o644, Body: []byte(n)})
	}
	slices.SortFunc(ctx.Files, func(a, b build.File) int { return strings.Compare(a.Name, b.Name) })
	tests := []struct {
		df   string
		want []string // regular files in the layer
	}{
		{"FROM b\nWORKDIR /app\nCOPY . .\n", []string{"app/a.py", "app/conf/x.yaml", "app/conf/y.yaml", "app/src1/m.py", "app/src2/n.py"}},
		{"FROM b\nCOPY a.py /opt/main.py\n", []string{"opt/main.py"}},
		{"FROM b\nCOPY a.py conf /opt/\n", []string{"opt/a.py", "opt/x.yaml", "opt/y.yaml"}},
		{"FROM b\nWORKDIR /w\nCOPY [\"conf/x.yaml\", \"c/\"]\n", []string{"w/c/x.yaml"}},
		{"FROM b\nCOPY src* /s/\n", []string{"s/m.py", "s/n.py"}},
		{"FROM b\nADD conf/*.yaml /etc/app/\n", []string{"etc/app/x.yaml", "etc/app/y.yaml"}},
	}
	for _, tc := range tests {
		ins, err := build.ParseDockerfile(tc.df)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := readRecipe(ins)
		if err != nil {
			t.Fatalf("%q: %v", tc.df, err)
		}
		files, err := rec.layerFiles(ctx)
		if err != nil {
			t.Fatalf("%q: %v", tc.df, err)
		}
		var got []string
		dirs := map[string]bool{}
		for _, f := range files {
			if f.Type == tar.TypeDir {
				dirs[f.Name] = true
			} else {
				got = append(got, f.Name)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%q: layer files %v, want %v", tc.df, got, tc.want)
		}
		for _, n := range got {
			if d := n[:strings.LastIndex(n, "/")]; !dirs[d] {
				t.Errorf("%q: no directory entry for %s", tc.df, d)
			}
		}
	}
}

func TestRecipeConfig(t *testing.T) {
	t.Parallel()
	ins, err := build.ParseDockerfile("FROM b\nENV A=1 B=\"two words\"\nENV C 3\nLABEL team=ml\nWORKDIR /x\nWORKDIR y\nCMD [\"a\"]\nENTRYPOINT python run.py\n")
	if err != nil {
		t.Fatal(err)
	}
	r, err := readRecipe(ins)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.env; len(got) != 3 || got[1] != [2]string{"B", "two words"} || got[2] != [2]string{"C", "3"} {
		t.Errorf("env = %q, want A=1, B=two words, C=3", got)
	}
	if r.workdir != "/x/y" || r.labels["team"] != "ml" {
		t.Errorf("workdir %q, labels %v; want /x/y and team=ml", r.workdir, r.labels)
	}
	if !slices.Equal(r.entrypoint, []string{"/bin/sh", "-c", "python run.py"}) || !slices.Equal(r.cmd, []string{"a"}) {
		t.Errorf("entrypoint %q cmd %q, want shell form and [a]", r.entrypoint, r.cmd)
	}
	for _, bad := range []string{"FROM b\nENV =x\n", "FROM b\nCOPY onlyone\n", "FROM b\nENV A=\"unclosed\n"} {
		ins, err := build.ParseDockerfile(bad)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := readRecipe(ins); !errors.Is(err, job.ErrInvalid) {
			t.Errorf("%q: got %v, want ErrInvalid", bad, err)
		}
	}
}

func FuzzRecipe(f *testing.F) {
	f.Add("FROM b\nWORKDIR /app\nCOPY . .\nENV A=1\n", "a.py")
	f.Add("FROM b\nCOPY [\"x\", \"y/\"]\nADD s* /d/\n", "s1/x")
	f.Fuzz(func(t *testing.T, df, file string) {
		ins, err := build.ParseDockerfile(df)
		if err != nil {
			return
		}
		r, err := readRecipe(ins)
		if err != nil {
			if !errors.Is(err, job.ErrInvalid) && !errors.Is(err, build.ErrNotFit) {
				t.Fatalf("error %v is neither ErrInvalid nor ErrNotFit", err)
			}
			return
		}
		ctx := &build.Context{Files: []build.File{{Name: file, Type: tar.TypeReg}}}
		files, err := r.layerFiles(ctx)
		if err != nil {
			return
		}
		for _, f := range files {
			if f.Name == "" || strings.HasPrefix(f.Name, "/") || strings.Contains("/"+f.Name+"/", "/../") {
				t.Fatalf("layer path %q escapes the root", f.Name)
			}
		}
	})
}

package oci

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/slipway-ml/slipway/internal/build"
	"github.com/slipway-ml/slipway/internal/job"
)

// recipe is what a Dockerfile that needs no build asks for: a base, the
// files to copy, and config changes.
type recipe struct {
	base       string
	env        [][2]string // in order; later wins
	workdir    string      // last WORKDIR, "" if none
	workdirs   []string    // every WORKDIR, created in the layer
	entrypoint []string
	cmd        []string
	hasEP      bool
	hasCmd     bool
	labels     map[string]string
	copies     []copyOp
}

type copyOp struct {
	srcs []string
	dest string // absolute; a trailing "/" means a directory
	line int
}

// allowed are the instructions that only copy files and set config.
var allowed = []string{"FROM", "COPY", "ADD", "ENV", "WORKDIR", "ENTRYPOINT", "CMD", "LABEL"}

func notFit(line int, format string, args ...any) error {
	return fmt.Errorf("%w: Dockerfile line %d: %s", build.ErrNotFit, line, fmt.Sprintf(format, args...))
}

// readRecipe interprets the instructions, or says with ErrNotFit why they
// need a real build.
func readRecipe(ins []build.Instruction) (*recipe, error) {
	r := &recipe{labels: map[string]string{}}
	for _, in := range ins {
		if !slices.Contains(allowed, in.Cmd) {
			return nil, notFit(in.Line, "%s needs a build with a daemon", in.Cmd)
		}
		if in.Cmd != "ENTRYPOINT" && in.Cmd != "CMD" && strings.Contains(in.Args, "$") {
			return nil, notFit(in.Line, "variable substitution needs a build with a daemon")
		}
		switch in.Cmd {
		case "FROM":
			if r.base != "" {
				return nil, notFit(in.Line, "a multi-stage build needs a daemon")
			}
			f := strings.Fields(in.Args)
			if len(f) != 1 && !(len(f) == 3 && strings.EqualFold(f[1], "AS")) || strings.HasPrefix(f[0], "--") {
				return nil, notFit(in.Line, "FROM %s: only FROM image [AS name]", in.Args)
			}
			if strings.EqualFold(f[0], "scratch") {
				return nil, notFit(in.Line, "FROM scratch has no base to append to")
			}
			r.base = f[0]
		case "COPY", "ADD":
			op, err := readCopy(in)
			if err != nil {
				return nil, err
			}
			op.dest = absolute(r.workdir, op.dest)
			r.copies = append(r.copies, op)
		case "ENV":
			kv, err := splitPairs(in)
			if err != nil {
				return nil, err
			}
			r.env = append(r.env, kv...)
		case "LABEL":
			kv, err := splitPairs(in)
			if err != nil {
				return nil, err
			}
			for _, p := range kv {
				r.labels[p[0]] = p[1]
			}
		case "WORKDIR":
			r.workdir = absolute(r.workdir, unquote(in.Args))
			r.workdirs = append(r.workdirs, r.workdir)
		case "ENTRYPOINT":
			r.entrypoint, r.hasEP = execForm(in.Args), true
			if !r.hasCmd {
				r.cmd = nil // as Docker does: a new ENTRYPOINT drops the base's CMD
			}
		case "CMD":
			r.cmd, r.hasCmd = execForm(in.Args), true
		}
	}
	return r, nil
}

func readCopy(in build.Instruction) (copyOp, error) {
	var args []string
	if strings.HasPrefix(in.Args, "[") {
		if err := json.Unmarshal([]byte(in.Args), &args); err != nil {
			return copyOp{}, fmt.Errorf("%w: Dockerfile line %d: %s: %v", job.ErrInvalid, in.Line, in.Cmd, err)
		}
	} else {
		args = strings.Fields(in.Args)
	}
	if len(args) > 0 && strings.HasPrefix(args[0], "--") {
		return copyOp{}, notFit(in.Line, "%s %s needs a build with a daemon", in.Cmd, args[0])
	}
	if len(args) < 2 {
		return copyOp{}, fmt.Errorf("%w: Dockerfile line %d: %s needs a source and a destination", job.ErrInvalid, in.Line, in.Cmd)
	}
	op := copyOp{srcs: args[:len(args)-1], dest: args[len(args)-1], line: in.Line}
	if in.Cmd == "ADD" {
		for _, s := range op.srcs {
			if strings.Contains(s, "://") || strings.HasPrefix(s, "git@") || isArchive(s) {
				return copyOp{}, notFit(in.Line, "ADD %s (a URL or an archive to unpack) needs a build with a daemon", s)
			}
		}
	}
	return op, nil
}

func isArchive(s string) bool {
	for _, ext := range []string{".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".gz", ".bz2", ".xz"} {
		if strings.HasSuffix(strings.ToLower(s), ext) {
			return true
		}
	}
	return false
}

// absolute resolves p against the working directory, keeping a trailing slash.
func absolute(wd, p string) string {
	dir := strings.HasSuffix(p, "/") || p == "." || p == "./"
	if !path.IsAbs(p) {
		if wd == "" {
			wd = "/"
		}
		p = path.Join(wd, p)
	}
	p = path.Clean(p)
	if dir && p != "/" {
		p += "/"
	}
	return p
}

func unquote(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && (s[0] == '"' && s[len(s)-1] == '"' || s[0] == '\'' && s[len(s)-1] == '\'') {
		return s[1 : len(s)-1]
	}
	return s
}

// splitPairs reads ENV and LABEL arguments: k=v pairs (values may be
// quoted), or the old "k v" form.
func splitPairs(in build.Instruction) ([][2]string, error) {
	words, err := shellWords(in.Args)
	if err != nil {
		return nil, fmt.Errorf("%w: Dockerfile line %d: %s: %v", job.ErrInvalid, in.Line, in.Cmd, err)
	}
	if len(words) > 0 && !strings.Contains(words[0], "=") {
		k, v, _ := strings.Cut(in.Args, " ")
		return [][2]string{{k, unquote(v)}}, nil
	}
	var out [][2]string
	for _, w := range words {
		k, v, ok := strings.Cut(w, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%w: Dockerfile line %d: %s %q: want key=value", job.ErrInvalid, in.Line, in.Cmd, w)
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

// shellWords splits on spaces, honouring double and single quotes.
func shellWords(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	var quote rune
	in := false
	for _, c := range s {
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(c)
		case c == '"' || c == '\'':
			quote, in = c, true
		case c == ' ' || c == '\t':
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(c)
			in = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unclosed quote")
	}
	if in {
		out = append(out, cur.String())
	}
	return out, nil
}

// execForm reads ENTRYPOINT and CMD: a JSON array, else a shell command.
func execForm(s string) []string {
	var args []string
	if strings.HasPrefix(s, "[") && json.Unmarshal([]byte(s), &args) == nil {
		return args
	}
	return []string{"/bin/sh", "-c", s}
}

// layerFiles lays the copies out as the files of one layer: each COPY in
// order (a later one replacing an earlier file), the parent directories and
// the WORKDIRs made.
func (r *recipe) layerFiles(c *build.Context) ([]build.File, error) {
	out := map[string]build.File{}
	for _, op := range r.copies {
		multi := len(op.srcs) > 1
		for _, src := range op.srcs {
			src = path.Clean(strings.TrimPrefix(src, "/"))
			matched := false
			for _, f := range c.Files {
				rel, ok := under(f.Name, src)
				if !ok {
					continue
				}
				matched = true
				var dest string
				switch {
				case rel != "":
					dest = path.Join(op.dest, rel)
				case f.Type == tar.TypeDir:
					continue
				case strings.HasSuffix(op.dest, "/") || multi || hasMeta(src):
					dest = path.Join(op.dest, path.Base(f.Name))
				default:
					dest = path.Clean(op.dest)
				}
				nf := f
				nf.Name = strings.TrimPrefix(dest, "/")
				if nf.Name == "" {
					continue
				}
				out[nf.Name] = nf
			}
			if !matched {
				return nil, fmt.Errorf("%w: Dockerfile line %d: COPY %s: no such file in the code", job.ErrInvalid, op.line, src)
			}
		}
	}
	for _, wd := range r.workdirs {
		if name := strings.Trim(wd, "/"); name != "" {
			if _, ok := out[name]; !ok {
				out[name] = build.File{Name: name, Type: tar.TypeDir, Mode: 0o755}
			}
		}
	}
	for name := range out {
		for d := path.Dir(name); d != "." && d != "/"; d = path.Dir(d) {
			if _, ok := out[d]; !ok {
				out[d] = build.File{Name: d, Type: tar.TypeDir, Mode: 0o755}
			}
		}
	}
	files := make([]build.File, 0, len(out))
	for _, f := range out {
		files = append(files, f)
	}
	slices.SortFunc(files, func(a, b build.File) int { return strings.Compare(a.Name, b.Name) })
	return files, nil
}

func hasMeta(p string) bool { return strings.ContainsAny(p, `*?[`) }

// under reports whether name is src (rel "") or inside it (rel the rest),
// src being a path or a glob of the context.
func under(name, src string) (string, bool) {
	if src == "." {
		return name, true
	}
	if hasMeta(src) {
		n := strings.Count(src, "/") + 1
		parts := strings.SplitN(name, "/", n+1)
		if len(parts) < n {
			return "", false
		}
		head := strings.Join(parts[:n], "/")
		if ok, _ := path.Match(src, head); !ok {
			return "", false
		}
		if len(parts) == n {
			return "", true
		}
		return parts[n], true // a matched directory gives its contents, as in Docker
	}
	if name == src {
		return "", true
	}
	if rel, ok := strings.CutPrefix(name, src+"/"); ok {
		return rel, true
	}
	return "", false
}

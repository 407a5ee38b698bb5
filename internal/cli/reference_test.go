package cli

import (
	"bytes"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/slipway-ml/slipway/internal/config"
)

// The CLI part of docs/reference.md sits between these markers and is
// generated from the cobra tree; TestReferenceIsCurrent fails when it is
// stale, and rewrites it when SLIPWAY_UPDATE_DOCS=1:
//
//	SLIPWAY_UPDATE_DOCS=1 go test ./internal/cli -run TestReferenceIsCurrent
const (
	refBegin = "<!-- BEGIN GENERATED CLI REFERENCE: SLIPWAY_UPDATE_DOCS=1 go test ./internal/cli -run TestReferenceIsCurrent -->\n"
	refEnd   = "<!-- END GENERATED CLI REFERENCE -->\n"
	refPath  = "../../docs/reference.md"
)

// cliReference writes the markdown reference of every command under root.
func cliReference(root *cobra.Command) string {
	var b strings.Builder
	home, _ := os.UserHomeDir()
	clean := func(s string) string {
		if home != "" && home != "/" {
			s = strings.ReplaceAll(s, home, "~")
		}
		return s
	}
	flagTable := func(fs *pflag.FlagSet) {
		if !fs.HasAvailableFlags() {
			return
		}
		b.WriteString("| Flag | Default | Meaning |\n|---|---|---|\n")
		fs.VisitAll(func(f *pflag.Flag) {
			if f.Hidden || f.Name == "help" {
				return
			}
			name := "`--" + f.Name + "`"
			if f.Shorthand != "" {
				name = "`-" + f.Shorthand + "`, " + name
			}
			def := f.DefValue
			if def == "[]" || (f.Value.Type() == "bool" && def == "false") {
				def = ""
			}
			if def != "" {
				def = "`" + clean(def) + "`"
			}
			fmt.Fprintf(&b, "| %s | %s | %s |\n", name, def, strings.ReplaceAll(clean(f.Usage), "|", `\|`))
		})
		b.WriteString("\n")
	}
	b.WriteString("### Global flags\n\nEvery command takes these.\n\n")
	flagTable(root.PersistentFlags())
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" {
			return
		}
		fmt.Fprintf(&b, "### %s\n\n%s.\n\n", c.CommandPath(), strings.TrimSuffix(c.Short, "."))
		fmt.Fprintf(&b, "```text\n%s\n```\n\n", c.UseLine())
		if c.Long != "" && c != root {
			fmt.Fprintf(&b, "```text\n%s\n```\n\n", clean(strings.TrimSpace(c.Long)))
		}
		flagTable(c.NonInheritedFlags())
		if c.Example != "" {
			fmt.Fprintf(&b, "Examples:\n\n```sh\n%s\n```\n\n", strings.TrimRight(dedent(c.Example), "\n"))
		}
		if subs := c.Commands(); len(subs) > 0 {
			for _, s := range subs {
				if !s.Hidden && s.Name() != "help" {
					fmt.Fprintf(&b, "- [`%s`](#%s): %s\n", s.CommandPath(), anchor(s.CommandPath()), s.Short)
				}
			}
			b.WriteString("\n")
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	return b.String()
}

// dedent removes the two spaces cobra's examples are indented by.
func dedent(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, "  ")
	}
	return strings.Join(lines, "\n")
}

// anchor is the heading anchor GitHub makes of a command path.
func anchor(s string) string { return strings.ReplaceAll(strings.ToLower(s), " ", "-") }

func TestReferenceIsCurrent(t *testing.T) {
	t.Setenv("SLIPWAY_SERVER", "") // flag defaults read it
	doc, err := os.ReadFile(refPath)
	if err != nil {
		t.Fatalf("reading the reference: %v", err)
	}
	i, j := bytes.Index(doc, []byte(refBegin)), bytes.Index(doc, []byte(refEnd))
	if i < 0 || j < i {
		t.Fatalf("%s lacks the generated section's markers %q … %q", refPath, refBegin, refEnd)
	}
	want := cliReference((&app{}).rootCmd())
	got := string(doc[i+len(refBegin) : j])
	if got == want {
		return
	}
	if os.Getenv("SLIPWAY_UPDATE_DOCS") == "1" {
		out := append(append(append([]byte{}, doc[:i+len(refBegin)]...), want...), doc[j:]...)
		if err := os.WriteFile(refPath, out, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote the CLI part of %s", refPath)
		return
	}
	t.Errorf("the CLI part of %s is stale: run SLIPWAY_UPDATE_DOCS=1 go test ./internal/cli -run TestReferenceIsCurrent\nfirst difference near: %q",
		refPath, firstDiff(got, want))
}

func firstDiff(a, b string) string {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return b[max(0, n-40):min(len(b), n+80)]
}

// TestReferenceNamesEveryAgentConfigKey checks the hand-written agent
// config part of the reference against the config struct's keys.
func TestReferenceNamesEveryAgentConfigKey(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(refPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range yamlKeys(reflect.TypeOf(config.Agent{}), "") {
		if !bytes.Contains(doc, []byte("| `"+key+"`")) {
			t.Errorf("%s: the agent config table has no row for `%s`", refPath, key)
		}
	}
}

// yamlKeys lists the dotted yaml key paths of a struct type.
func yamlKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		keys = append(keys, prefix+name)
		if f.Type.Kind() == reflect.Struct {
			keys = append(keys, yamlKeys(f.Type, prefix+name+".")...)
		}
	}
	return keys
}

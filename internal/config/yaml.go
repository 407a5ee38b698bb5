package config

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxYAMLDepth bounds alias and merge-key following.
const maxYAMLDepth = 64

// decodeYAML decodes b into out (a pointer to a struct with yaml tags) by
// walking the node tree, so that every unknown key and every value of the
// wrong kind is reported at once with its path and line. It returns the
// line of each key it set.
func decodeYAML(b []byte, out any) (map[string]int, Errors) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, Errors{{Msg: "reading YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	w := &yamlWalker{lines: map[string]int{}}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return w.lines, nil // empty file: every field at its default
	}
	w.walk(doc.Content[0], reflect.ValueOf(out).Elem(), "", 0)
	return w.lines, w.errs
}

type yamlWalker struct {
	errs  Errors
	lines map[string]int
}

func (w *yamlWalker) bad(n *yaml.Node, path, format string, args ...any) {
	w.errs = append(w.errs, FieldError{Path: path, Line: n.Line, Msg: fmt.Sprintf(format, args...)})
}

func (w *yamlWalker) walk(n *yaml.Node, v reflect.Value, path string, depth int) {
	if depth > maxYAMLDepth {
		w.bad(n, path, "nested too deeply")
		return
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			w.bad(n, path, "unknown alias")
			return
		}
		w.walk(n.Alias, v, path, depth+1)
		return
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // "key:" with no value leaves the default
	}
	switch v.Kind() {
	case reflect.Struct:
		w.walkStruct(n, v, path, depth)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			w.bad(n, path, "got %s, want a list", describeNode(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			w.lines[indexPath(path, i)] = c.Line
			w.walk(c, s.Index(i), indexPath(path, i), depth+1)
		}
		v.Set(s)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			w.bad(n, path, "got %s, want a string", describeNode(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Int:
		var x int
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&x) != nil {
			w.bad(n, path, "got %s, want an integer", describeNode(n))
			return
		}
		v.SetInt(int64(x))
	case reflect.Bool:
		var x bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&x) != nil {
			w.bad(n, path, "got %s, want true or false", describeNode(n))
			return
		}
		v.SetBool(x)
	default:
		panic("config: no YAML decoding for " + v.Type().String())
	}
}

func (w *yamlWalker) walkStruct(n *yaml.Node, v reflect.Value, path string, depth int) {
	if n.Kind != yaml.MappingNode {
		w.bad(n, path, "got %s, want a mapping", describeNode(n))
		return
	}
	fields := yamlFields(v.Type())
	// Sorted, so that a suggestion is stable when two candidates tie.
	names := slices.Sorted(maps.Keys(fields))
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge" {
			w.walkMerge(val, v, path, depth+1)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			w.bad(k, path, "got %s as a key, want a name", describeNode(k))
			continue
		}
		p := joinPath(path, k.Value)
		idx, ok := fields[k.Value]
		if !ok {
			w.bad(k, p, "unknown key%s", didYouMean(k.Value, names))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			w.bad(k, p, "duplicate key (first on line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		w.lines[p] = k.Line
		w.walk(val, v.Field(idx), p, depth+1)
	}
}

// walkMerge applies a YAML merge key ("<<: *base") to the struct v.
func (w *yamlWalker) walkMerge(n *yaml.Node, v reflect.Value, path string, depth int) {
	if depth > maxYAMLDepth {
		w.bad(n, path, "nested too deeply")
		return
	}
	switch n.Kind {
	case yaml.AliasNode:
		if n.Alias != nil {
			w.walkMerge(n.Alias, v, path, depth+1)
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			w.walkMerge(c, v, path, depth+1)
		}
	default:
		w.walkStruct(n, v, path, depth)
	}
}

// yamlFields maps each yaml tag name of struct type t to its field index.
func yamlFields(t reflect.Type) map[string]int {
	m := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if f.IsExported() && name != "" && name != "-" {
			m[name] = i
		}
	}
	return m
}

// describeNode names what a node holds, for "got X, want Y" messages.
func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	v := n.Value
	if len(v) > 40 {
		v = v[:40] + "..."
	}
	switch n.ShortTag() {
	case "!!str":
		return fmt.Sprintf("string %q", v)
	case "!!int":
		return "integer " + v
	case "!!float":
		return "number " + v
	case "!!bool":
		return "boolean " + v
	}
	return fmt.Sprintf("%q", v)
}

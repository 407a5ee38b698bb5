package config

import (
	"reflect"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sagemaker"
)

// shapeKind is the JSON kind a member of the request model takes.
type shapeKind int

const (
	kindAny shapeKind = iota // documents and unions: any JSON value
	kindStruct
	kindList
	kindMap
	kindString
	kindEnum
	kindInt
	kindFloat
	kindBool
	kindTimestamp
	kindBlob
)

// shape is one node of the CreateTrainingJob request model.
type shape struct {
	kind    shapeKind
	name    string            // the SDK type name of structs and enums
	bits    int               // integer width: 32 or 64
	members map[string]*shape // struct members by wire name
	names   []string          // member names, sorted, for suggestions
	elem    *shape            // list elements and map values
	enum    []string          // enum values, as the SDK lists them
}

var (
	modelOnce sync.Once
	model     *shape
)

// trainingJobModel returns the CreateTrainingJob request model, derived by
// reflection from the AWS SDK's input type so that it follows the SDK as it
// updates: member names, nesting, JSON kinds and enum values.
func trainingJobModel() *shape {
	modelOnce.Do(func() {
		model = shapeOf(reflect.TypeFor[sagemaker.CreateTrainingJobInput](), map[reflect.Type]*shape{})
	})
	return model
}

var (
	timeType   = reflect.TypeFor[time.Time]()
	stringType = reflect.TypeFor[string]()
)

func shapeOf(t reflect.Type, seen map[reflect.Type]*shape) *shape {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if s, ok := seen[t]; ok {
		return s // a recursive type: the shape is being filled in above
	}
	if vals := enumValues(t); vals != nil {
		return &shape{kind: kindEnum, name: t.Name(), enum: vals}
	}
	switch t.Kind() {
	case reflect.Struct:
		if t == timeType {
			return &shape{kind: kindTimestamp}
		}
		s := &shape{kind: kindStruct, name: t.Name(), members: map[string]*shape{}}
		seen[t] = s
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() || f.Anonymous {
				continue
			}
			s.members[f.Name] = shapeOf(f.Type, seen)
			s.names = append(s.names, f.Name)
		}
		sort.Strings(s.names)
		return s
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return &shape{kind: kindBlob}
		}
		return &shape{kind: kindList, elem: shapeOf(t.Elem(), seen)}
	case reflect.Map:
		return &shape{kind: kindMap, elem: shapeOf(t.Elem(), seen)}
	case reflect.String:
		return &shape{kind: kindString}
	case reflect.Int32:
		return &shape{kind: kindInt, bits: 32}
	case reflect.Int, reflect.Int64:
		return &shape{kind: kindInt, bits: 64}
	case reflect.Float32, reflect.Float64:
		return &shape{kind: kindFloat}
	case reflect.Bool:
		return &shape{kind: kindBool}
	}
	return &shape{kind: kindAny}
}

// enumValues returns the values of an SDK enum type (a string type with a
// Values method), or nil for any other type.
func enumValues(t reflect.Type) []string {
	if t.Kind() != reflect.String || t == stringType {
		return nil
	}
	m, ok := t.MethodByName("Values")
	if !ok || m.Type.NumIn() != 1 || m.Type.NumOut() != 1 || m.Type.Out(0).Kind() != reflect.Slice {
		return nil
	}
	out := m.Func.Call([]reflect.Value{reflect.Zero(t)})[0]
	vals := make([]string, out.Len())
	for i := range vals {
		vals[i] = out.Index(i).String()
	}
	return slices.Clip(vals)
}

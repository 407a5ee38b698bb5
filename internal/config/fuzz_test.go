package config

import (
	"testing"
)

func FuzzParseAgent(f *testing.F) {
	f.Add([]byte(designAgent))
	f.Add([]byte("queues: &q [a]\nbuilder:\n  <<: [{type: docker}, *q]\n"))
	f.Add([]byte("a: &a [*a]"))
	f.Add([]byte("builder: {destnation: x}\nmax_jobs: 1e9\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseAgent(b)
		if err != nil {
			return
		}
		_ = a.WithDefaults().Validate()
	})
}

func FuzzValidateSageMakerQueue(f *testing.F) {
	f.Add([]byte(DefaultSageMakerQueue))
	f.Add([]byte(templated))
	f.Add([]byte(`{"InputDataConfig": [{"DataSource": {"S3DataSource": {"S3Uri": 5}}}], "Tags": [null]}`))
	f.Add([]byte(`{"HyperParameters": {"\u00e9": 1e400}, "ResourceConfig": {"InstanceCount": -0}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		q, errs := ValidateSageMakerQueue(b)
		if q == nil {
			if len(errs) == 0 {
				t.Fatal("got no queue and no error")
			}
			return
		}
		_ = q.Missing()
		if len(errs) == 0 && len(q.Placeholders()) == 0 {
			if _, err := q.TrainingJobInput(); err != nil {
				t.Fatalf("valid body %q: TrainingJobInput: %v", b, err)
			}
		}
	})
}

func FuzzParseVar(f *testing.F) {
	for _, s := range []string{"n:int:1:8=2", "s:string:enum=a,b=a", "lr:float:0:1=0.001", "b:bool=true", "x:int::", "n:int:enum=1,2=3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		v, err := ParseVar(spec)
		if err != nil {
			return
		}
		// A parsed spec writes back to one that parses to the same variable.
		w, err := ParseVar(v.String())
		if err != nil {
			t.Fatalf("%q: re-parsing %q: %v", spec, v.String(), err)
		}
		if w.String() != v.String() {
			t.Fatalf("%q: got %q after a round trip, want %q", spec, w.String(), v.String())
		}
		if v.HasDefault {
			if err := v.Check(v.Default); err != nil {
				t.Fatalf("%q: default rejected: %v", spec, err)
			}
		}
	})
}

package awsjson

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"testing"
	"time"
)

func TestTimeRoundTrip(t *testing.T) {
	t.Parallel()
	in := time.UnixMilli(1767225600123).UTC()
	b, err := json.Marshal(Time{in})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), "1767225600.123"; got != want {
		t.Errorf("marshal: got %s, want %s", got, want)
	}
	var out Time
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if d := out.Sub(in); d < -time.Millisecond || d > time.Millisecond {
		t.Errorf("round trip: got %v, want %v", out.Time, in)
	}
	if err := json.Unmarshal([]byte(`"2026-01-01T00:00:00Z"`), &out); err != nil || out.Unix() != 1767225600 {
		t.Errorf("RFC 3339: got %v %v, want 1767225600", out.Time, err)
	}
}

func TestWriteError(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	WriteError(rec, nil, Validation("bad %s", "thing"))
	var body map[string]string
	_ = json.Unmarshal(rec.Body.Bytes(), &body)
	if rec.Code != 400 || body["__type"] != "ValidationException" || body["message"] != "bad thing" {
		t.Errorf("got %d %v, want 400 ValidationException 'bad thing'", rec.Code, body)
	}
	rec = httptest.NewRecorder()
	WriteError(rec, nil, errors.New("boom"))
	if rec.Code != 500 {
		t.Errorf("plain error: got %d, want 500", rec.Code)
	}
}

// FuzzTimeUnmarshal: timestamps come from clients; no input may panic.
func FuzzTimeUnmarshal(f *testing.F) {
	for _, s := range []string{"0", "1.5", `"2026-01-01T00:00:00Z"`, "1e400", "NaN", `"x"`, "-1"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var tm Time
		_ = tm.UnmarshalJSON(b)
	})
}

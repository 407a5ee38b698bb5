// Package awsjson speaks the AWS JSON 1.1 wire protocol from the server side:
// decoding a request body, answering a result, and answering an error in the
// {"__type": ..., "message": ...} shape that the AWS SDKs and CLI parse.
package awsjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"
)

// ContentType is what AWS JSON 1.1 services answer with.
const ContentType = "application/x-amz-json-1.1"

// Error is a service error as the SDKs see it: a code (the shape name, such
// as ValidationException), a message and an HTTP status.
type Error struct {
	Code    string
	Message string
	Status  int
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns a 400 error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Status: http.StatusBadRequest}
}

// Validation returns a ValidationException, the error most services answer
// for malformed input.
func Validation(format string, args ...any) *Error {
	return Errorf("ValidationException", format, args...)
}

// Decode reads a JSON request body into v. An empty body decodes as {}.
// Unknown members are ignored, as the services do for forward compatibility.
func Decode(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
	if err != nil {
		return Errorf("SerializationException", "reading request body: %v", err)
	}
	if len(body) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return Errorf("SerializationException", "decoding request body: %v", err)
	}
	return nil
}

// Write answers v as a 200 JSON 1.1 result.
func Write(w http.ResponseWriter, v any) {
	if v == nil {
		v = struct{}{}
	}
	body, err := json.Marshal(v)
	if err != nil {
		WriteError(w, nil, fmt.Errorf("encoding response: %w", err))
		return
	}
	w.Header().Set("Content-Type", ContentType)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// WriteError answers err. An *Error keeps its code and status; anything else
// is an InternalFailure (500), logged when log is not nil.
func WriteError(w http.ResponseWriter, log *slog.Logger, err error) {
	var e *Error
	if !errors.As(err, &e) {
		if log != nil {
			log.Error("internal error", "err", err)
		}
		e = &Error{Code: "InternalFailure", Message: err.Error(), Status: http.StatusInternalServerError}
	}
	body, _ := json.Marshal(map[string]string{"__type": e.Code, "message": e.Message})
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("X-Amzn-ErrorType", e.Code)
	w.WriteHeader(e.Status)
	_, _ = w.Write(body)
}

// Handler adapts a function that returns a result or an error.
func Handler(log *slog.Logger, f func(r *http.Request) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := f(r)
		if err != nil {
			WriteError(w, log, err)
			return
		}
		Write(w, v)
	})
}

// Time is a timestamp that the JSON protocols carry as epoch seconds (a
// JSON number, with a fraction for sub-second precision).
type Time struct{ time.Time }

// NewTime returns a *Time for t, or nil for the zero time, so that
// `omitempty` leaves unset timestamps out.
func NewTime(t time.Time) *Time {
	if t.IsZero() {
		return nil
	}
	return &Time{t}
}

// MarshalJSON writes epoch seconds.
func (t Time) MarshalJSON() ([]byte, error) {
	sec := float64(t.UnixMilli()) / 1000
	return []byte(strconv.FormatFloat(sec, 'f', -1, 64)), nil
}

// UnmarshalJSON reads epoch seconds (a number) or an RFC 3339 string.
func (t *Time) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return fmt.Errorf("parsing timestamp %q: %w", s, err)
		}
		t.Time = v
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("parsing timestamp %s: not epoch seconds", b)
	}
	sec, frac := math.Modf(f)
	t.Time = time.Unix(int64(sec), int64(frac*1e9)).UTC()
	return nil
}

// Ops maps a service's operation names (X-Amz-Target after the service's
// prefix) to the functions that serve them.
type Ops map[string]func(r *http.Request) (any, error)

// Handler returns the handler of op, or nil when the service does not
// serve it.
func (o Ops) Handler(op string, log *slog.Logger) http.Handler {
	f, ok := o[op]
	if !ok {
		return nil
	}
	return Handler(log, f)
}

package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/job"
)

// maxBody caps a request body: a job's code plus its base64 overhead.
const maxBody = api.MaxCodeSize*4/3 + 1<<20

// Smaller caps for the routes that carry no code: a batch of log lines or
// of transitions, and
// every other body (queue configs, claims, transitions, tokens).
const (
	maxLogsBody  = 16 << 20
	maxSmallBody = 1 << 20
)

// bodyLimit is the largest body r's route takes.
func bodyLimit(r *http.Request) int64 {
	switch r.Pattern {
	case "POST /v1/jobs":
		return maxBody
	case "POST /v1/jobs/{id}/logs", "POST /v1/transitions":
		return maxLogsBody
	}
	return maxSmallBody
}

// readJSON decodes the request body into v strictly: an unknown field or
// trailing data is an error that names it.
func readJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, bodyLimit(r)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return fmt.Errorf("%w: request body: larger than %d bytes", job.ErrInvalid, tooBig.Limit)
		}
		return fmt.Errorf("%w: request body: %v", job.ErrInvalid, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: request body: unexpected data after the JSON value", job.ErrInvalid)
	}
	return nil
}

// buffers are writeJSON's, reused: an agent's claims and reports are
// many small answers.
var buffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// writeJSON answers v as compact JSON with its length, so that the
// connection stays open for the client's next request without chunking.
func writeJSON(w http.ResponseWriter, status int, v any) {
	buf := buffers.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 1<<20 { // keep no giant job list for good
			buf.Reset()
			buffers.Put(buf)
		}
	}()
	buf.Reset()
	if err := json.NewEncoder(buf).Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		_ = json.NewEncoder(buf).Encode(api.Error{Code: "internal", Message: "encoding the answer: " + err.Error()})
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes()) // the client went away; nothing to do
}

var statusOf = map[error]int{
	job.ErrNotFound:  http.StatusNotFound,
	job.ErrExists:    http.StatusConflict,
	job.ErrInvalid:   http.StatusBadRequest,
	job.ErrLeaseLost: http.StatusConflict,
	job.ErrConflict:  http.StatusConflict,

	job.ErrUnauthorized: http.StatusUnauthorized,
	job.ErrForbidden:    http.StatusForbidden,
}

// httpStatus is the status code that answers err.
func httpStatus(err error) int {
	if sentinel := api.ErrOf(api.CodeOf(err)); sentinel != nil {
		return statusOf[sentinel]
	}
	return http.StatusInternalServerError
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if gone := r.Context().Err(); gone != nil && errors.Is(err, gone) {
		// The client hung up (an agent shutting down, a ^C): nothing failed
		// here, and nobody reads the answer.
		s.log.Debug("request ended by its client", "method", r.Method, "path", r.URL.Path)
		return
	}
	code := api.CodeOf(err)
	status := http.StatusInternalServerError
	if sentinel := api.ErrOf(code); sentinel != nil {
		status = statusOf[sentinel]
	} else {
		s.log.Error("serving request", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, status, api.Error{Code: code, Message: err.Error()})
}

// queryInt reads an integer query parameter, def when absent.
func queryInt(r *http.Request, name string, def int64) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: query parameter %s=%q: want an integer", job.ErrInvalid, name, v)
	}
	return n, nil
}

// queryWait reads the ?wait= duration of a long poll, capped at MaxWait.
func (s *Server) queryWait(r *http.Request) (time.Duration, error) {
	v := r.URL.Query().Get("wait")
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%w: query parameter wait=%q: want a duration like 20s", job.ErrInvalid, v)
	}
	return min(d, s.cfg.MaxWait), nil
}

package client_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/client"
	"github.com/slipway-ml/slipway/internal/job"
)

func TestUploadProgressReportsTheWholeBody(t *testing.T) {
	t.Parallel()
	var received int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		received, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(job.Job{ID: "j-1"})
	}))
	t.Cleanup(srv.Close)
	var calls int
	var last, total int64
	c, err := client.New(srv.URL, client.WithUploadProgress(func(sent, all int64) {
		calls++
		last, total = sent, all
	}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Enqueue(context.Background(), api.Enqueue{Queue: "q", Code: make([]byte, 1<<20)}); err != nil {
		t.Fatal(err)
	}
	if calls < 2 || last != total || total != received {
		t.Fatalf("progress: %d calls, last %d of %d, server got %d; want several calls ending at the whole body", calls, last, total, received)
	}
}

// Package dashboard is Slipway's web dashboard: server-rendered HTML pages of
// the queues, the jobs, one job's timeline, request, artifacts and logs, and
// the agents. It reads the store through a small interface and needs nothing
// from the internet: templates, styles and the one script (the live log
// tail, which long-polls the API's /v1/jobs/{id}/logs) are embedded.
//
// The server mounts it next to its API:
//
//	mux.Handle("/", dash) // every path that is not /v1/... or /healthz
package dashboard

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
)

// Reader is what the dashboard reads; *sqlite.Store and *postgres.Store
// satisfy it, like any store.Store.
type Reader interface {
	ListQueues(ctx context.Context) ([]job.Queue, error)
	GetQueue(ctx context.Context, name string) (job.Queue, error)
	ListJobs(ctx context.Context, f store.JobFilter) ([]job.Job, error)
	CountUnfinished(ctx context.Context) (map[string]map[job.State]int, error)
	GetJob(ctx context.Context, id string) (job.Job, error)
	ReadLogs(ctx context.Context, id string, attempt int, after int64, limit int) ([]job.LogLine, error)
	ListAgents(ctx context.Context) ([]job.Agent, error)
}

// Config configures a Handler.
type Config struct {
	// Store is read for every page. Required.
	Store Reader
	// Logger receives errors met while rendering. Default: slog.Default().
	Logger *slog.Logger
	// AgentFresh is how recently an agent must have been seen to count as
	// serving its queues. Agents are seen at every claim, and a claim waits
	// at most 30s on the server. Default: 2m.
	AgentFresh time.Duration
	// LogLines caps the log lines rendered on a job page; the live tail
	// goes on from the last one. Default: 2000.
	LogLines int
	// Now tells the time, for ages and agent freshness. Default: time.Now.
	Now func() time.Time
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.AgentFresh <= 0 {
		c.AgentFresh = 2 * time.Minute
	}
	if c.LogLines <= 0 {
		c.LogLines = 2000
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports the first thing wrong with c.
func (c Config) Validate() error {
	if c.Store == nil {
		return errors.New("dashboard: config: Store is required")
	}
	return nil
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Handler serves the dashboard's pages.
type Handler struct {
	cfg   Config
	log   *slog.Logger
	pages map[string]*template.Template
	mux   *http.ServeMux
}

// New returns a Handler for cfg.
func New(cfg Config) (*Handler, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	h := &Handler{cfg: cfg, log: cfg.Logger, pages: map[string]*template.Template{}}
	for _, p := range []string{"overview", "queue", "jobs", "job", "agents"} {
		t, err := template.New("layout.html").Funcs(funcs(cfg.Now)).ParseFS(templateFS, "templates/layout.html", "templates/parts.html", "templates/"+p+".html")
		if err != nil {
			return nil, fmt.Errorf("parsing dashboard template %s: %w", p, err)
		}
		h.pages[p] = t
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, fmt.Errorf("opening dashboard assets: %w", err)
	}
	m := http.NewServeMux()
	m.HandleFunc("GET /{$}", h.overview)
	m.HandleFunc("GET /queues/{name}", h.queue)
	m.HandleFunc("GET /jobs", h.jobs)
	m.HandleFunc("GET /jobs/{id}", h.job)
	m.HandleFunc("GET /agents", h.agents)
	m.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", http.FileServerFS(static)))
	h.mux = m
	return h, nil
}

// ServeHTTP serves the dashboard.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	h.mux.ServeHTTP(w, r)
}

// render writes page p with data, or an error page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, p string, data any) {
	var buf bytes.Buffer
	if err := h.pages[p].ExecuteTemplate(&buf, "layout.html", data); err != nil {
		h.fail(w, r, fmt.Errorf("rendering page %s: %w", p, err))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = buf.WriteTo(w)
}

// fail answers with the status that err's sentinel calls for.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, job.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, job.ErrInvalid):
		status = http.StatusBadRequest
	case r.Context().Err() != nil:
		return // the browser went away
	default:
		h.log.Error("reading for the dashboard", "path", r.URL.Path, "err", err)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, "%d %s: %v\n", status, http.StatusText(status), err)
}

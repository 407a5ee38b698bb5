package server_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/client"
	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/server"
	"github.com/slipway-ml/slipway/internal/store"
)

// authSetup runs a server with Auth on, an admin token made straight in its
// store (as `slipway token create --db` does), and returns its URL and an
// admin client.
func authSetup(t *testing.T) (url string, admin *client.Client, adminSecret string) {
	t.Helper()
	_, url, admin, adminSecret = authServer(t, server.Config{}, nil)
	return url, admin, adminSecret
}

// authServer is authSetup for a server made with cfg, its store seen
// through wrap when wrap is not nil; it also returns the server.
func authServer(t *testing.T, cfg server.Config, wrap func(store.Store) store.Store) (srv *server.Server, url string, admin *client.Client, adminSecret string) {
	t.Helper()
	tok, secret, err := job.NewToken(job.RoleAdmin, nil, "test admin")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Auth = true
	srv, c := setupWrapped(t, cfg, func(st store.Store) store.Store {
		if _, err := st.CreateToken(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
		if wrap != nil {
			return wrap(st)
		}
		return st
	})
	return srv, c.URL(), mustClient(t, c.URL(), secret), secret
}

func mustClient(t *testing.T, url, token string) *client.Client {
	t.Helper()
	c, err := client.New(url, client.WithToken(token))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// tokenClient makes a token with the admin client and returns a client
// that sends it.
func tokenClient(t *testing.T, url string, admin *client.Client, role job.Role, queues ...string) *client.Client {
	t.Helper()
	tok, err := admin.CreateToken(context.Background(), api.CreateToken{Role: role, Queues: queues})
	if err != nil {
		t.Fatalf("creating a %s token: %v", role, err)
	}
	return mustClient(t, url, tok.Secret)
}

func wantErrIs(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: got %v, want %v", what, err, want)
	}
}

func TestAuthNoOrBadToken(t *testing.T) {
	t.Parallel()
	url, admin, secret := authSetup(t)
	ctx := context.Background()

	anon := mustClient(t, url, "")
	if err := anon.Health(ctx); err != nil {
		t.Errorf("healthz without a token: got %v, want it open", err)
	}
	_, err := anon.Queues(ctx)
	wantErrIs(t, "no token", err, job.ErrUnauthorized)

	id, _ := job.TokenID(secret)
	for name, bad := range map[string]string{
		"garbage":      "hunter2",
		"wrong secret": "slw_" + id + "_" + strings.Repeat("A", 43),
		"unknown id":   "slw_t-0123456789abcdef_" + strings.Repeat("A", 43),
		"truncated":    secret[:len(secret)-1],
	} {
		_, err := mustClient(t, url, bad).Queues(ctx)
		wantErrIs(t, name+" token", err, job.ErrUnauthorized)
	}

	sub, err := admin.CreateToken(ctx, api.CreateToken{Role: job.RoleSubmit, Name: "soon revoked"})
	if err != nil {
		t.Fatal(err)
	}
	if sub.Secret == "" || !strings.HasPrefix(sub.Secret, "slw_"+sub.ID+"_") {
		t.Fatalf("created token secret %q: want slw_%s_...", sub.Secret, sub.ID)
	}
	subc := mustClient(t, url, sub.Secret)
	if _, err := subc.Queues(ctx); err != nil {
		t.Fatalf("a fresh submit token listing queues: %v", err)
	}
	if err := admin.RevokeToken(ctx, sub.ID); err != nil {
		t.Fatal(err)
	}
	_, err = subc.Queues(ctx)
	wantErrIs(t, "revoked token", err, job.ErrUnauthorized)

	list, err := admin.Tokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Role != job.RoleAdmin {
		t.Errorf("tokens after the revocation: got %+v, want the admin token alone", list)
	}

	// The status codes themselves, for clients other than ours.
	resp, err := http.Get(url + "/v1/queues")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /v1/queues without a token: got %d, want 401", resp.StatusCode)
	}
}

func TestAuthRolesAndQueues(t *testing.T) {
	t.Parallel()
	url, admin, _ := authSetup(t)
	ctx := context.Background()
	mustQueue(t, admin, "q1", job.LocalProcess)
	mustQueue(t, admin, "q2", job.LocalProcess)
	spec := job.Spec{Entrypoint: []string{"true"}}
	other, err := admin.Enqueue(ctx, api.Enqueue{Queue: "q2", Spec: spec})
	if err != nil {
		t.Fatal(err)
	}

	sub := tokenClient(t, url, admin, job.RoleSubmit, "q1")
	agent := tokenClient(t, url, admin, job.RoleAgent, "q1")

	mine, err := sub.Enqueue(ctx, api.Enqueue{Queue: "q1", Spec: spec})
	if err != nil {
		t.Fatalf("submit token enqueueing to its queue: %v", err)
	}
	_, err = sub.Enqueue(ctx, api.Enqueue{Queue: "q2", Spec: spec})
	wantErrIs(t, "submit token enqueueing to another queue", err, job.ErrForbidden)
	_, err = sub.Job(ctx, other.ID)
	wantErrIs(t, "submit token reading a job of another queue", err, job.ErrForbidden)
	_, err = sub.Cancel(ctx, other.ID)
	wantErrIs(t, "submit token canceling a job of another queue", err, job.ErrForbidden)
	_, err = sub.Jobs(ctx, "q2", "", 0)
	wantErrIs(t, "submit token listing another queue", err, job.ErrForbidden)
	_, err = sub.Queue(ctx, "q2")
	wantErrIs(t, "submit token reading another queue", err, job.ErrForbidden)
	_, err = sub.CreateQueue(ctx, api.CreateQueue{Name: "q3", Resource: job.LocalProcess})
	wantErrIs(t, "submit token creating a queue", err, job.ErrForbidden)
	_, err = sub.CreateToken(ctx, api.CreateToken{Role: job.RoleAdmin})
	wantErrIs(t, "submit token creating a token", err, job.ErrForbidden)
	_, err = sub.Claim(ctx, api.Claim{Agent: "a", Queues: []string{"q1"}})
	wantErrIs(t, "submit token claiming", err, job.ErrForbidden)

	qs, err := sub.Queues(ctx)
	if err != nil || len(qs) != 1 || qs[0].Name != "q1" {
		t.Errorf("submit token listing queues: got %v, %v; want q1 alone", qs, err)
	}
	js, err := sub.Jobs(ctx, "", "", 0)
	if err != nil || len(js) != 1 || js[0].ID != mine.ID {
		t.Errorf("submit token listing jobs: got %d jobs, %v; want its own job alone", len(js), err)
	}
	if got, err := sub.Job(ctx, mine.ID); err != nil || got.ID != mine.ID {
		t.Errorf("submit token reading its job: got %v, %v", got.ID, err)
	}

	_, err = agent.Claim(ctx, api.Claim{Agent: "a", Queues: []string{"q2"}})
	wantErrIs(t, "agent token claiming from another queue", err, job.ErrForbidden)
	_, err = agent.Enqueue(ctx, api.Enqueue{Queue: "q1", Spec: spec})
	wantErrIs(t, "agent token enqueueing", err, job.ErrForbidden)
	_, err = agent.UpdateQueue(ctx, api.CreateQueue{Name: "q1"})
	wantErrIs(t, "agent token changing a queue", err, job.ErrForbidden)
	got, err := agent.Claim(ctx, api.Claim{Agent: "a", Queues: []string{api.AllQueues}, Wait: time.Second})
	if err != nil {
		t.Fatalf("agent token claiming every queue it may: %v", err)
	}
	if got.Job.ID != mine.ID {
		t.Fatalf("agent token scoped to q1 claimed %s of %s; want %s of q1", got.Job.ID, got.Job.Queue, mine.ID)
	}
	if _, err := agent.Transition(ctx, mine.ID, api.Transition{Token: got.Job.Lease.Token, To: job.Building}); err != nil {
		t.Errorf("agent token moving its job: %v", err)
	}
	_, err = agent.Transition(ctx, other.ID, api.Transition{Token: 1, To: job.Building})
	wantErrIs(t, "agent token moving a job of another queue", err, job.ErrForbidden)

	wide := tokenClient(t, url, admin, job.RoleAgent)
	_, err = wide.Claim(ctx, api.Claim{Agent: "b", Queues: []string{"q2"}, Wait: time.Second})
	if err != nil {
		t.Errorf("unscoped agent token claiming from q2: %v", err)
	}
	self, err := wide.Self(ctx)
	if err != nil || self.Role != job.RoleAgent || len(self.Queues) != 0 {
		t.Errorf("Self: got %+v, %v; want an unscoped agent token", self, err)
	}
}

func TestAuthDashboard(t *testing.T) {
	t.Parallel()
	url, admin, secret := authSetup(t)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string, cookies ...*http.Cookie) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, url+path, nil)
		for _, c := range cookies {
			req.AddCookie(c)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := get("/"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("dashboard without a token: got %d, want 401", r.StatusCode)
	}
	if r := get("/ui/static/style.css"); r.StatusCode != http.StatusOK {
		t.Errorf("static file without a token: got %d, want 200", r.StatusCode)
	}
	sub, err := admin.CreateToken(context.Background(), api.CreateToken{Role: job.RoleSubmit})
	if err != nil {
		t.Fatal(err)
	}
	if r := get("/login?token=" + sub.Secret); r.StatusCode != http.StatusForbidden {
		t.Errorf("login with a submit token: got %d, want 403", r.StatusCode)
	}
	if r := get("/login?token=nope"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("login with a bad token: got %d, want 401", r.StatusCode)
	}
	r := get("/login?token=" + secret)
	if r.StatusCode != http.StatusSeeOther || len(r.Cookies()) != 1 || !r.Cookies()[0].HttpOnly {
		t.Fatalf("login with the admin token: got %d, cookies %v; want 303 and one HttpOnly cookie", r.StatusCode, r.Cookies())
	}
	if r := get("/", r.Cookies()...); r.StatusCode != http.StatusOK {
		t.Errorf("dashboard with the session cookie: got %d, want 200", r.StatusCode)
	}
	// The cookie opens the pages, never the API.
	if r := get("/v1/queues", r.Cookies()...); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("API with the session cookie alone: got %d, want 401", r.StatusCode)
	}
}

func TestBodyLimits(t *testing.T) {
	t.Parallel()
	url, _, secret := authSetup(t)
	big := bytes.Repeat([]byte(" "), 2<<20)
	for _, path := range []string{"/v1/claim", "/v1/queues", "/v1/tokens"} {
		req, _ := http.NewRequest(http.MethodPost, url+path, bytes.NewReader(append(big, "{}"...)))
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("POST %s with a 2 MiB body: got %d, want 400", path, resp.StatusCode)
		}
	}
}

func TestQueuePolicyAtEnqueue(t *testing.T) {
	t.Parallel()
	url, admin, _ := authSetup(t)
	ctx := context.Background()
	body := `{"RoleArn": "arn:aws:iam::123456789012:role/Train", "OutputDataConfig": {"S3OutputPath": "s3://b/o"},
		"ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 2}, "StoppingCondition": {"MaxRuntimeInSeconds": 600}}`
	pol := &job.Policy{RoleArns: []string{"arn:aws:iam::123456789012:role/Train"}, Images: []string{"123456789012.dkr.ecr.us-east-1.amazonaws.com/team/"}}
	if _, err := admin.CreateQueue(ctx, api.CreateQueue{Name: "sm", Resource: job.SageMaker, Config: []byte(body), Policy: pol}); err != nil {
		t.Fatal(err)
	}
	sub := tokenClient(t, url, admin, job.RoleSubmit, "sm")
	_, err := sub.UpdateQueue(ctx, api.CreateQueue{Name: "sm", Policy: &job.Policy{}})
	wantErrIs(t, "submit token lifting a policy", err, job.ErrForbidden)

	good := job.Spec{Image: "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/train:1"}
	if _, err := sub.Enqueue(ctx, api.Enqueue{Queue: "sm", Spec: good}); err != nil {
		t.Fatalf("a job inside the policy: %v", err)
	}
	badRole := good
	badRole.ResourceArgs = []byte(`{"RoleArn": "arn:aws:iam::123456789012:role/Admin"}`)
	_, err = sub.Enqueue(ctx, api.Enqueue{Queue: "sm", Spec: badRole})
	if !errors.Is(err, job.ErrForbidden) || !strings.Contains(err.Error(), "role_arns") {
		t.Errorf("a forbidden role ARN: got %v, want ErrForbidden naming role_arns", err)
	}
	_, err = sub.Enqueue(ctx, api.Enqueue{Queue: "sm", Spec: job.Spec{Image: "docker.io/evil/miner"}})
	if !errors.Is(err, job.ErrForbidden) || !strings.Contains(err.Error(), "images") {
		t.Errorf("a forbidden image: got %v, want ErrForbidden naming images", err)
	}
	// An update without a policy keeps it; an empty one removes it.
	q, err := admin.UpdateQueue(ctx, api.CreateQueue{Name: "sm", MaxRunning: new(int)})
	if err != nil || q.Policy == nil || len(q.Policy.RoleArns) != 1 {
		t.Fatalf("update without --policy: policy %+v, %v; want it kept", q.Policy, err)
	}
	q, err = admin.UpdateQueue(ctx, api.CreateQueue{Name: "sm", Policy: &job.Policy{}})
	if err != nil || q.Policy != nil {
		t.Fatalf("update with an empty policy: %+v, %v; want none", q.Policy, err)
	}
	if _, err := sub.Enqueue(ctx, api.Enqueue{Queue: "sm", Spec: badRole}); err != nil {
		t.Errorf("the same job once the policy is lifted: %v", err)
	}
}

// TestMetricsNeedAnAdminToken: /metrics names every queue and its load, so
// with auth on it answers only an admin.
func TestMetricsNeedAnAdminToken(t *testing.T) {
	t.Parallel()
	url, admin, adminSecret := authSetup(t)
	submit, err := admin.CreateToken(context.Background(), api.CreateToken{Role: job.RoleSubmit, Name: "s"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		token string
		want  int
	}{{"", http.StatusUnauthorized}, {submit.Secret, http.StatusForbidden}, {adminSecret, http.StatusOK}} {
		req, _ := http.NewRequest(http.MethodGet, url+"/metrics", nil)
		if tt.token != "" {
			req.Header.Set("Authorization", "Bearer "+tt.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("GET /metrics with token %.8q: got %d, want %d", tt.token, resp.StatusCode, tt.want)
		}
	}
}

// TestScopedJobListsLimitWithinScope checks that a token scoped to several
// queues gets the newest jobs of those queues up to the limit, however many
// newer jobs other queues have.
func TestScopedJobListsLimitWithinScope(t *testing.T) {
	t.Parallel()
	url, admin, _ := authSetup(t)
	ctx := context.Background()
	for _, q := range []string{"mine", "also-mine", "theirs"} {
		mustQueue(t, admin, q, job.LocalProcess)
	}
	spec := job.Spec{Entrypoint: []string{"true"}}
	var want []string // newest first
	for _, q := range []string{"mine", "also-mine", "theirs", "theirs", "theirs"} {
		j, err := admin.Enqueue(ctx, api.Enqueue{Queue: q, Spec: spec})
		if err != nil {
			t.Fatal(err)
		}
		if q != "theirs" {
			want = append([]string{j.ID}, want...)
		}
	}
	sub := tokenClient(t, url, admin, job.RoleSubmit, "mine", "also-mine")
	js, err := sub.Jobs(ctx, "", "", 2)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, j := range js {
		got = append(got, j.ID)
	}
	if !slices.Equal(got, want) {
		t.Errorf("scoped list with limit 2: got %v, want %v (its two queues' jobs)", got, want)
	}
}

// TestAgentRegistersForItsTokensQueues checks that an agent is registered
// for the queues its token lets it claim from, and refused others.
func TestAgentRegistersForItsTokensQueues(t *testing.T) {
	t.Parallel()
	url, admin, _ := authSetup(t)
	ctx := context.Background()
	mustQueue(t, admin, "q1", job.LocalProcess)
	mustQueue(t, admin, "q2", job.LocalProcess)
	agent := tokenClient(t, url, admin, job.RoleAgent, "q1")
	a, err := agent.RegisterAgent(ctx, job.Agent{Name: "worker", Queues: []string{api.AllQueues}})
	if err != nil || !slices.Equal(a.Queues, []string{"q1"}) {
		t.Errorf("registering for every queue with a token scoped to q1: got %v, %v; want [q1]", a.Queues, err)
	}
	_, err = agent.RegisterAgent(ctx, job.Agent{Name: "worker", Queues: []string{"q2"}})
	wantErrIs(t, "registering for a queue the token does not name", err, job.ErrForbidden)
}

package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/job"
)

// TestUnknownAPIRouteIsNotFound checks that a path under /v1/ that the
// server has no route for is answered 404 with the API's error body, for
// any token or none, not handed to the dashboard (which answers 403 to a
// token that is not an admin's): a client newer than its server learns
// so plainly.
func TestUnknownAPIRouteIsNotFound(t *testing.T) {
	t.Parallel()
	url, admin, _ := authSetup(t)
	agentTok, err := admin.CreateToken(context.Background(), api.CreateToken{Role: job.RoleAgent})
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{agentTok.Secret, ""} {
		req, err := http.NewRequest(http.MethodPost, url+"/v1/claims-of-the-future", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		if secret != "" {
			req.Header.Set("Authorization", "Bearer "+secret)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body api.Error
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || err != nil || body.Code != "not_found" {
			t.Errorf("POST to an unknown /v1/ path (token %v): got status %d, code %q (%v); want 404, not_found",
				secret != "", resp.StatusCode, body.Code, err)
		}
	}
}

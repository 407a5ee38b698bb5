package secretsmanager

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzHandlers feeds request bodies to every operation: each answers a
// result or a client error, never a server error or a panic. (That a
// stored value reads back unchanged is checked by localaws's
// TestSecretsManagerThroughTheSDK, with the AWS SDK.)
func FuzzHandlers(f *testing.F) {
	f.Add(`{"Name":"a","SecretString":"v"}`, `{"SecretId":"a"}`)
	f.Add(`{"Name":"a/b","SecretBinary":"AAEC"}`, `{"SecretId":"arn:aws:secretsmanager:us-east-1:000000000000:secret:a/b"}`)
	f.Add(`{"Name":"x","SecretString":"v","SecretBinary":"AA=="}`, `{"SecretId":"x","VersionStage":"AWSPREVIOUS"}`)
	f.Add(`{"Name":""}`, `{"SecretId":"x","ForceDeleteWithoutRecovery":true,"RecoveryWindowInDays":7}`)
	f.Add(`[`, `{"SecretId":1}`)
	f.Fuzz(func(t *testing.T, first, second string) {
		s, err := Open(t.TempDir(), "us-east-1", "000000000000")
		if err != nil {
			t.Fatal(err)
		}
		log := slog.New(slog.DiscardHandler)
		for _, op := range []string{"CreateSecret", "PutSecretValue", "GetSecretValue", "DeleteSecret", "GetSecretValue"} {
			for _, body := range []string{first, second} {
				w := httptest.NewRecorder()
				s.Handler(op, log).ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body)))
				if w.Code != http.StatusOK && w.Code != http.StatusBadRequest {
					t.Fatalf("%s %q: got %d %s, want 200 or 400", op, body, w.Code, w.Body)
				}
			}
		}
	})
}

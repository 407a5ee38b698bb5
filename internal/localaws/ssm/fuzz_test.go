package ssm

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzHandlers feeds request bodies to every operation: each answers a
// result or a client error, never a server error or a panic.
func FuzzHandlers(f *testing.F) {
	f.Add(`{"Name":"/a/b","Value":"v","Type":"SecureString"}`, `{"Name":"/a/b","WithDecryption":true}`)
	f.Add(`{"Name":"a","Value":"v","Type":"String","Overwrite":true}`, `{"Name":"arn:aws:ssm:us-east-1:000000000000:parameter/a"}`)
	f.Add(`{"Name":"/aws/x","Value":"v"}`, `{"Name":"//"}`)
	f.Add(`{"Name":"a","Value":"v","Type":"Bogus","KeyId":"k"}`, `{`)
	f.Fuzz(func(t *testing.T, first, second string) {
		s, err := Open(t.TempDir(), "us-east-1", "000000000000")
		if err != nil {
			t.Fatal(err)
		}
		log := slog.New(slog.DiscardHandler)
		for _, op := range []string{"PutParameter", "GetParameter", "PutParameter", "DeleteParameter", "GetParameter"} {
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

package job

import (
	"errors"
	"strings"
	"testing"
)

func TestNewTokenRoundTrip(t *testing.T) {
	t.Parallel()
	tok, secret, err := NewToken(RoleSubmit, []string{"q1"}, "ci")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(tok.Hash, secret) || tok.Hash == secret {
		t.Fatalf("hash %q holds the secret", tok.Hash)
	}
	id, err := TokenID(secret)
	if err != nil || id != tok.ID {
		t.Fatalf("TokenID = %q, %v; want %q", id, err, tok.ID)
	}
	if !tok.Matches(secret) {
		t.Errorf("token does not match its own secret")
	}
	if tok.Matches(secret + "x") {
		t.Errorf("token matches a changed secret")
	}
	if !tok.Allows("q1") || tok.Allows("q2") {
		t.Errorf("Allows(q1), Allows(q2) = %v, %v; want true, false", tok.Allows("q1"), tok.Allows("q2"))
	}
	_, other, _ := NewToken(RoleSubmit, nil, "")
	if other == secret {
		t.Errorf("two tokens share a secret")
	}
}

func TestTokenValidate(t *testing.T) {
	t.Parallel()
	if _, _, err := NewToken(RoleAdmin, []string{"q1"}, ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("scoped admin: got %v, want ErrInvalid", err)
	}
	if _, _, err := NewToken("root", nil, ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("role root: got %v, want ErrInvalid", err)
	}
	if _, _, err := NewToken(RoleAgent, []string{"bad name"}, ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad queue: got %v, want ErrInvalid", err)
	}
}

func FuzzTokenID(f *testing.F) {
	_, secret, _ := NewToken(RoleAgent, nil, "")
	for _, s := range []string{secret, "", "slw_", "slw_t-0123456789abcdef_", "Bearer x", "slw_t-zz_x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := TokenID(s)
		if err != nil {
			if !errors.Is(err, ErrUnauthorized) {
				t.Fatalf("TokenID(%q): got %v, want ErrUnauthorized", s, err)
			}
			return
		}
		if !tokenID.MatchString(id) || !strings.HasPrefix(s, tokenPrefix+id+"_") {
			t.Fatalf("TokenID(%q) = %q: not the id the secret starts with", s, id)
		}
	})
}

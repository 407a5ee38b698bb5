package storetest

import (
	"reflect"
	"testing"

	"github.com/slipway-ml/slipway/internal/job"
)

// testTokens checks that tokens are kept by id with their hash, listed
// without it, survive a restart, and are gone once revoked.
func testTokens(t *testing.T, s *suite) {
	admin, adminSecret, err := job.NewToken(job.RoleAdmin, nil, "root")
	if err != nil {
		t.Fatal(err)
	}
	sub, _, err := job.NewToken(job.RoleSubmit, []string{"q1", "q2"}, "ci ☃")
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []job.Token{admin, sub} {
		if _, err := s.CreateToken(ctx(t), tok); err != nil {
			t.Fatalf("CreateToken %s: %v", tok.ID, err)
		}
	}
	_, err = s.CreateToken(ctx(t), admin)
	wantErr(t, "creating a token twice", err, job.ErrExists)
	bad := sub
	bad.ID, bad.Hash = "t-0000000000000000", "short"
	_, err = s.CreateToken(ctx(t), bad)
	wantErr(t, "creating a token with a bad hash", err, job.ErrInvalid)

	s.Store = s.reopen(t)
	got, err := s.GetToken(ctx(t), sub.ID)
	if err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	if got.Role != job.RoleSubmit || !reflect.DeepEqual(got.Queues, []string{"q1", "q2"}) || got.Hash != sub.Hash || got.Name != "ci ☃" || got.CreatedAt.IsZero() {
		t.Errorf("GetToken = %+v, want role submit, queues [q1 q2], the same hash, name and a creation time", got)
	}
	got, err = s.GetToken(ctx(t), admin.ID)
	if err != nil || !got.Matches(adminSecret) || len(got.Queues) != 0 {
		t.Errorf("GetToken(admin) = %+v, %v: want one that matches its secret, with no queues", got, err)
	}

	list, err := s.ListTokens(ctx(t))
	if err != nil {
		t.Fatalf("ListTokens: %v", err)
	}
	if len(list) != 2 {
		t.Fatalf("ListTokens: got %d tokens, want 2", len(list))
	}
	for _, tok := range list {
		if tok.Hash != "" {
			t.Errorf("ListTokens: token %s carries its hash", tok.ID)
		}
	}

	if err := s.RevokeToken(ctx(t), sub.ID); err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	_, err = s.GetToken(ctx(t), sub.ID)
	wantErr(t, "getting a revoked token", err, job.ErrNotFound)
	wantErr(t, "revoking a revoked token", s.RevokeToken(ctx(t), sub.ID), job.ErrNotFound)
	_, err = s.GetToken(ctx(t), "t-ffffffffffffffff")
	wantErr(t, "getting an unknown token", err, job.ErrNotFound)
}

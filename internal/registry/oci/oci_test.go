package oci

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/registry"
)

func setup(t *testing.T) (*Registry, string) {
	t.Helper()
	srv := httptest.NewServer(ggcrregistry.New())
	t.Cleanup(srv.Close)
	repo := strings.TrimPrefix(srv.URL, "http://") + "/team/train"
	r, err := New(Config{Repository: repo})
	if err != nil {
		t.Fatal(err)
	}
	return r, repo
}

func TestExists(t *testing.T) {
	t.Parallel()
	r, repo := setup(t)
	ctx := context.Background()
	if got, _ := r.Repository(ctx); got != repo {
		t.Errorf("Repository() = %q, want %q", got, repo)
	}
	if d, ok, err := r.Exists(ctx, "abc"); err != nil || ok || d != "" {
		t.Fatalf("Exists before push = %q, %v, %v; want \"\", false, nil", d, ok, err)
	}
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(repo + ":abc")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	d, ok, err := r.Exists(ctx, "abc")
	if err != nil || !ok || d != want.String() {
		t.Errorf("Exists after push = %q, %v, %v; want %q, true, nil", d, ok, err, want)
	}
	if _, ok, err := r.Exists(ctx, "other"); err != nil || ok {
		t.Errorf("Exists(other) = %v, %v; want false, nil", ok, err)
	}
	if _, _, err := r.Exists(ctx, "bad tag!"); !errors.Is(err, job.ErrInvalid) {
		t.Errorf("Exists(bad tag) error = %v, want ErrInvalid", err)
	}
}

func TestExistsUnreachable(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(ggcrregistry.New())
	repo := strings.TrimPrefix(srv.URL, "http://") + "/x"
	srv.Close()
	r, err := New(Config{Repository: repo})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := r.Exists(context.Background(), "abc"); !errors.Is(err, registry.ErrUnreachable) || ok {
		t.Errorf("Exists on a closed registry = %v, %v; want false, ErrUnreachable", ok, err)
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	r, err := New(Config{Repository: "registry.example:5000/a", Username: "u", Password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := r.Auth(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := a.Authorization()
	if err != nil || cfg.Username != "u" || cfg.Password != "p" {
		t.Errorf("Auth() = %+v, %v; want u/p", cfg, err)
	}
	anon, _ := New(Config{Repository: "registry.example:5000/a", Keychain: authn.NewMultiKeychain()})
	if a, err := anon.Auth(context.Background()); err != nil || a != authn.Anonymous {
		t.Errorf("Auth() with an empty keychain = %v, %v; want anonymous", a, err)
	}
}

func TestNewInvalid(t *testing.T) {
	t.Parallel()
	for _, uri := range []string{"", "repo-without-host", "host:5000/Upper", "host:5000/a:tag", "host:5000/a@sha256:00"} {
		if _, err := New(Config{Repository: uri}); !errors.Is(err, job.ErrInvalid) {
			t.Errorf("New(%q) error = %v, want ErrInvalid", uri, err)
		}
	}
}

func TestKeychain(t *testing.T) {
	t.Parallel()
	r, err := New(Config{Repository: "reg.example/a", Username: "u", Password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	kc := registry.Keychain(r)
	own, err := authn.Resolve(context.Background(), kc, name.MustParseReference("reg.example/base:1").Context())
	if err != nil || own == authn.Anonymous {
		t.Errorf("keychain for the registry's own host = %v, %v; want its credentials", own, err)
	}
}

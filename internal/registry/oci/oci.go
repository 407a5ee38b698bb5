// Package oci is a registry.Registry for any plain OCI registry (Docker's
// distribution, Harbor, a registry on localhost...), spoken to with
// go-containerregistry. Local queues use it: `registry: {type: oci, uri: HOST/REPO}`.
package oci

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/registry"
)

// Config says which repository to use and how to log in.
type Config struct {
	// Repository is host[:port]/path, without a tag. Required.
	Repository string
	// Username and Password log in with basic auth. Default "": the
	// keychain's credentials.
	Username, Password string
	// Keychain finds credentials when Username is empty. Default
	// authn.DefaultKeychain (the Docker config and its credential helpers).
	Keychain authn.Keychain
	// Insecure speaks plain HTTP to the registry. Default false (HTTPS,
	// except for localhost and 127.0.0.1, which go-containerregistry and
	// Docker both reach over HTTP).
	Insecure bool
	// Transport carries the requests. Default remote.DefaultTransport.
	Transport http.RoundTripper
}

// Registry is one repository in a plain OCI registry.
type Registry struct {
	cfg  Config
	repo name.Repository
}

var _ registry.Registry = (*Registry)(nil)

// New checks cfg and returns its registry. It makes no request.
func New(cfg Config) (*Registry, error) {
	var opts []name.Option
	if cfg.Insecure {
		opts = append(opts, name.Insecure)
	}
	repo, err := name.NewRepository(cfg.Repository, name.StrictValidation)
	if err == nil {
		repo, err = name.NewRepository(cfg.Repository, opts...)
	}
	if err != nil || cfg.Repository == "" {
		return nil, fmt.Errorf("%w: registry uri %q: want host[:port]/path without a tag", job.ErrInvalid, cfg.Repository)
	}
	if cfg.Keychain == nil {
		cfg.Keychain = authn.DefaultKeychain
	}
	if cfg.Transport == nil {
		cfg.Transport = remote.DefaultTransport
	}
	return &Registry{cfg: cfg, repo: repo}, nil
}

// Repository implements registry.Registry.
func (r *Registry) Repository(context.Context) (string, error) { return r.repo.Name(), nil }

// Auth implements registry.Registry.
func (r *Registry) Auth(ctx context.Context) (authn.Authenticator, error) {
	if r.cfg.Username != "" {
		return &authn.Basic{Username: r.cfg.Username, Password: r.cfg.Password}, nil
	}
	a, err := authn.Resolve(ctx, r.cfg.Keychain, r.repo)
	if err != nil {
		return nil, fmt.Errorf("finding credentials for %s: %w", r.repo.RegistryStr(), err)
	}
	return a, nil
}

// Exists implements registry.Registry with a HEAD on the tag's manifest.
func (r *Registry) Exists(ctx context.Context, tag string) (string, bool, error) {
	if _, err := name.NewTag("x:" + tag); err != nil || tag == "" {
		return "", false, fmt.Errorf("%w: tag %q: want letters, digits, '_', '.' or '-'", job.ErrInvalid, tag)
	}
	ref := r.repo.Tag(tag)
	auth, err := r.Auth(ctx)
	if err != nil {
		return "", false, err
	}
	desc, err := remote.Head(ref, remote.WithContext(ctx), remote.WithAuth(auth), remote.WithTransport(r.cfg.Transport))
	var terr *transport.Error
	switch {
	case errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound:
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("asking %s for tag %s: %w: %w", r.repo.Name(), tag, registry.ErrUnreachable, err)
	}
	return desc.Digest.String(), true, nil
}

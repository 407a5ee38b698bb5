// Package registry is the seam between the builders and the image registry
// that built images go to: ECR (registry/ecr) or any plain OCI registry
// (registry/oci).
//
// Images are tagged by content (see package build), so "does this tag
// exist" is the question that lets a build be skipped.
package registry

import (
	"context"
	"errors"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
)

// Registry is one image repository in a registry.
type Registry interface {
	// Repository returns the repository's address, host[:port]/path without
	// a tag, creating the repository first where the registry needs that
	// (ECR).
	Repository(ctx context.Context) (string, error)
	// Exists reports whether tag is in the repository, and the digest of the
	// manifest it names when it is. An error means the registry could not
	// be asked, not that the tag is missing.
	Exists(ctx context.Context, tag string) (digest string, ok bool, err error)
	// Auth returns the credentials for pulling from and pushing to the
	// repository.
	Auth(ctx context.Context) (authn.Authenticator, error)
}

// ErrUnreachable wraps errors of a registry that did not answer.
var ErrUnreachable = errors.New("registry unreachable")

// Host returns the registry host of a repository address.
func Host(repository string) string {
	h, _, _ := strings.Cut(repository, "/")
	return h
}

// Keychain resolves credentials for any registry: r's own for r's host, and
// the default keychain (docker config, credential helpers) for the others.
// Builders use it to read base images; it implements authn.ContextKeychain,
// so go-containerregistry passes the request's context through.
func Keychain(r Registry) authn.Keychain {
	return authn.NewMultiKeychain(keychain{r: r}, authn.DefaultKeychain)
}

type keychain struct{ r Registry }

func (k keychain) Resolve(res authn.Resource) (authn.Authenticator, error) {
	return k.ResolveContext(context.Background(), res)
}

func (k keychain) ResolveContext(ctx context.Context, res authn.Resource) (authn.Authenticator, error) {
	repo, err := k.r.Repository(ctx)
	if err != nil || Host(repo) != res.RegistryStr() {
		return authn.Anonymous, nil
	}
	return k.r.Auth(ctx)
}

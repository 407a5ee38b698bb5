package client

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
)

// WithRootCAs makes the client trust, for an https:// server, the
// certificate authorities in pool instead of the system's: a server with a
// private or self-signed certificate.
func WithRootCAs(pool *x509.CertPool) Option {
	return func(c *Client) {
		if t, ok := c.http.Transport.(*http.Transport); ok {
			t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
	}
}

package cli

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ml/slipway/internal/client"
	"github.com/slipway-ml/slipway/internal/job"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key,
// and returns their paths and the certificate pool that trusts it.
func selfSigned(t *testing.T) (certPath, keyPath string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "slipway test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certPath, keyPath, pool
}

// TestHTTPS serves the API over TLS with a self-signed certificate: a
// client that does not trust it is refused with a hint, one given --tls-ca
// (or SLIPWAY_TLS_CA) works, and an agent given it runs a job to the end.
func TestHTTPS(t *testing.T) {
	useConfig(t, "")
	certPath, keyPath, pool := selfSigned(t)
	ctx, cancel := context.WithCancel(context.Background())
	slog.SetDefault(slog.New(slog.DiscardHandler))
	st, err := openStore(ctx, filepath.Join(t.TempDir(), "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	opts := serverOptions{drain: time.Second, security: security{tlsCert: certPath, tlsKey: keyPath}}
	srv, err := startServerWith(ctx, "127.0.0.1:0", st, slog.Default(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = srv.wait()
		st.Close()
	})
	if !strings.HasPrefix(srv.url, "https://") {
		t.Fatalf("server URL %s, want https://", srv.url)
	}

	code, _, stderr := run(t, srv.url, "queue", "list")
	if code != exitError || !strings.Contains(stderr, "certificate") || !strings.Contains(stderr, "--tls-ca") {
		t.Errorf("queue list without the CA: exit %d, %q; want 1, naming the certificate and --tls-ca", code, stderr)
	}
	if code, _, stderr := run(t, srv.url, "--tls-ca", keyPath, "queue", "list"); code != exitUsage || !strings.Contains(stderr, "no PEM certificate") {
		t.Errorf("--tls-ca with a key file: exit %d, %q; want 2, no PEM certificate", code, stderr)
	}
	if code, _, stderr := run(t, srv.url, "--tls-ca", certPath, "queue", "create", "cpu", "--resource", "local-process"); code != 0 {
		t.Fatalf("queue create with --tls-ca: exit %d: %s", code, stderr)
	}
	t.Setenv("SLIPWAY_TLS_CA", certPath)
	code, out, stderr := run(t, srv.url, "launch", "-q", "cpu", "--entrypoint", "echo over tls")
	if code != 0 {
		t.Fatalf("launch with SLIPWAY_TLS_CA: exit %d: %s", code, stderr)
	}
	id := strings.TrimSpace(out)

	agentCtx, stopAgent := context.WithCancel(ctx)
	agentDone := make(chan int, 1)
	go func() {
		var sink strings.Builder
		agentDone <- Execute(agentCtx, []string{"--server", srv.url, "agent", "-q", "cpu"}, &sink, &sink)
	}()
	c, err := client.New(srv.url, client.WithRootCAs(pool))
	if err != nil {
		t.Fatal(err)
	}
	j := waitJob(t, c, id, "finished", func(j job.Job) bool { return j.State.Terminal() })
	stopAgent()
	<-agentDone
	if j.State != job.Finished {
		t.Errorf("job over HTTPS: %s (%s), want finished", j.State, j.Reason)
	}
}

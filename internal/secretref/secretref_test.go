package secretref_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/localaws/awsjson"
	"github.com/slipway-ml/slipway/internal/localaws/localawstest"
	"github.com/slipway-ml/slipway/internal/secretref"
)

func awsConfig(endpoint string) aws.Config {
	return aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(endpoint), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDLOCAL", "secret", "")}
}

// setup returns a resolver reading a local AWS endpoint that holds a
// string secret, a binary secret, and a SecureString parameter; and the
// string secret's ARN.
func setup(t *testing.T) (*secretref.Resolver, string) {
	t.Helper()
	cfg := awsConfig(localawstest.Services(t, ""))
	ctx := context.Background()
	sm := secretsmanager.NewFromConfig(cfg)
	out, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("app/token"), SecretString: aws.String("string-value")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("app/key"), SecretBinary: []byte("binary\x00value")}); err != nil {
		t.Fatal(err)
	}
	if _, err := ssm.NewFromConfig(cfg).PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/app/db"), Value: aws.String("param-value"), Type: ssmtypes.ParameterTypeSecureString}); err != nil {
		t.Fatal(err)
	}
	return secretref.NewFromConfig(cfg), aws.ToString(out.ARN)
}

func TestResolve(t *testing.T) {
	t.Parallel()
	r, arn := setup(t)
	for ref, want := range map[string]string{
		"secretsmanager:app/token": "string-value",
		"secretsmanager:" + arn:    "string-value",
		"secretsmanager:app/key":   "binary\x00value",
		"ssm:/app/db":              "param-value",
	} {
		got, err := r.Resolve(context.Background(), job.Secret{Name: "S", Ref: ref})
		if err != nil || got != want {
			t.Errorf("Resolve %s: got %q, %v, want %q", ref, got, err, want)
		}
	}
}

func TestResolveErrorsNameTheSecret(t *testing.T) {
	t.Parallel()
	r, _ := setup(t)
	for _, tc := range []struct {
		s    job.Secret
		want error
	}{
		{job.Secret{Name: "GONE", Ref: "secretsmanager:app/nope"}, job.ErrNotFound},
		{job.Secret{Name: "GONE", Ref: "ssm:/app/nope"}, job.ErrNotFound},
		{job.Secret{Name: "SEALED", Ref: job.SealedRef + "eA=="}, job.ErrInvalid},
		{job.Secret{Name: "BAD", Ref: "ssm:relative"}, job.ErrInvalid},
	} {
		_, err := r.Resolve(context.Background(), tc.s)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.s.Name) {
			t.Errorf("Resolve %s: got %v, want %v naming %s", tc.s.Ref, err, tc.want, tc.s.Name)
		}
	}
}

// denying answers every call with the error AWS gives a caller without
// the permission, and records the region each request was signed for.
func denying(t *testing.T) (url string, regions func() []string) {
	var mu sync.Mutex
	var seen []string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Credential=AKID/DATE/REGION/SERVICE/aws4_request
		if _, cred, ok := strings.Cut(r.Header.Get("Authorization"), "Credential="); ok {
			if parts := strings.Split(cred, "/"); len(parts) > 2 {
				mu.Lock()
				seen = append(seen, parts[2])
				mu.Unlock()
			}
		}
		awsjson.WriteError(w, nil, &awsjson.Error{Code: "AccessDeniedException", Status: http.StatusBadRequest,
			Message: "User: arn:aws:iam::000000000000:user/agent is not authorized to perform: " + r.Header.Get("X-Amz-Target")})
	}))
	t.Cleanup(ts.Close)
	return ts.URL, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), seen...) }
}

func TestAccessDeniedSaysWhichPermission(t *testing.T) {
	t.Parallel()
	url, regions := denying(t)
	r := secretref.NewFromConfig(awsConfig(url))
	for ref, perms := range map[string][]string{
		"secretsmanager:arn:aws:secretsmanager:eu-west-1:000000000000:secret:app/token-AbCdEf": {"secretsmanager:GetSecretValue", "kms:Decrypt"},
		"ssm:/app/db": {"ssm:GetParameter", "kms:Decrypt"},
	} {
		_, err := r.Resolve(context.Background(), job.Secret{Name: "TOKEN", Ref: ref})
		if !errors.Is(err, job.ErrForbidden) {
			t.Errorf("Resolve %s: got %v, want job.ErrForbidden", ref, err)
			continue
		}
		for _, want := range append(perms, "TOKEN", "access denied") {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Resolve %s: error %q does not say %q", ref, err, want)
			}
		}
	}
	// A secret's ARN names its region; the request goes there, not to the
	// agent's region.
	got := regions()
	if len(got) != 2 || !(got[0] == "eu-west-1" && got[1] == "us-east-1" || got[0] == "us-east-1" && got[1] == "eu-west-1") {
		t.Errorf("signing regions: got %v, want eu-west-1 for the ARN and us-east-1 for the parameter", got)
	}
}

func TestConfigIsLoadedOnceAndOnlyForAReference(t *testing.T) {
	t.Parallel()
	url := localawstest.Services(t, "")
	var loads atomic.Int32
	r := secretref.New(func(context.Context) (aws.Config, error) {
		loads.Add(1)
		return awsConfig(url), nil
	})
	if _, err := r.Resolve(context.Background(), job.Secret{Name: "S", Ref: job.SealedRef + "eA=="}); !errors.Is(err, job.ErrInvalid) {
		t.Errorf("Resolve of a sealed value: got %v, want job.ErrInvalid", err)
	}
	if n := loads.Load(); n != 0 {
		t.Errorf("loads after a sealed value only: got %d, want 0", n)
	}
	for range 3 {
		_, _ = r.Resolve(context.Background(), job.Secret{Name: "S", Ref: "ssm:/none"})
	}
	if n := loads.Load(); n != 1 {
		t.Errorf("loads after three references: got %d, want 1", n)
	}

	noRegion := secretref.NewFromConfig(aws.Config{})
	if _, err := noRegion.Resolve(context.Background(), job.Secret{Name: "S", Ref: "ssm:/x"}); !errors.Is(err, job.ErrInvalid) || !strings.Contains(err.Error(), "region") {
		t.Errorf("no region: got %v, want job.ErrInvalid saying region", err)
	}
	failing := secretref.New(func(context.Context) (aws.Config, error) { return aws.Config{}, errors.New("no profile x") })
	if _, err := failing.Resolve(context.Background(), job.Secret{Name: "S", Ref: "ssm:/x"}); err == nil || !strings.Contains(err.Error(), "no profile x") {
		t.Errorf("failing load: got %v, want its error", err)
	}
}

package localaws_test

import (
	"strings"
	"testing"

	"github.com/slipway-ml/slipway/internal/localaws/localawstest"
)

// TestAWSCLISecretsAndParameters drives Secrets Manager and SSM with the
// real AWS CLI, as a user preparing a secret reference would. Each CLI call
// costs about a second, so this checks the wire shapes the CLI reads; the
// SDK tests cover the rest of the behaviour.
func TestAWSCLISecretsAndParameters(t *testing.T) {
	t.Parallel()
	a := newCLI(t, localawstest.Services(t, ""))

	var created struct{ ARN, Name, VersionId string }
	a.json(a.aws("", false, "secretsmanager", "create-secret", "--name", "cli/token", "--secret-string", "cli-secret-1"), &created)
	if created.Name != "cli/token" || !strings.HasPrefix(created.ARN, "arn:aws:secretsmanager:us-east-1:000000000000:secret:cli/token-") || created.VersionId == "" {
		t.Fatalf("create-secret: got %+v, want name, ARN and version", created)
	}
	var got struct {
		SecretString  string
		VersionStages []string
		CreatedDate   string
	}
	a.json(a.aws("", false, "secretsmanager", "get-secret-value", "--secret-id", "cli/token"), &got)
	if got.SecretString != "cli-secret-1" || len(got.VersionStages) != 1 || got.VersionStages[0] != "AWSCURRENT" || !strings.HasPrefix(got.CreatedDate, "20") {
		t.Errorf("get-secret-value: got %+v, want cli-secret-1 at AWSCURRENT with a date", got)
	}
	a.aws("", false, "secretsmanager", "delete-secret", "--secret-id", "cli/token", "--force-delete-without-recovery")
	if stderr := a.aws("", true, "secretsmanager", "get-secret-value", "--secret-id", "cli/token"); !strings.Contains(stderr, "ResourceNotFoundException") {
		t.Errorf("get-secret-value after delete: got %q, want ResourceNotFoundException", stderr)
	}

	var put struct{ Version int }
	a.json(a.aws("", false, "ssm", "put-parameter", "--name", "/cli/db", "--value", "cli-param", "--type", "SecureString"), &put)
	if put.Version != 1 {
		t.Errorf("put-parameter: got version %d, want 1", put.Version)
	}
	var param struct {
		Parameter struct {
			Name, Type, Value string
			Version           int
		}
	}
	a.json(a.aws("", false, "ssm", "get-parameter", "--name", "/cli/db", "--with-decryption"), &param)
	if p := param.Parameter; p.Name != "/cli/db" || p.Type != "SecureString" || p.Value != "cli-param" || p.Version != 1 {
		t.Errorf("get-parameter --with-decryption: got %+v, want /cli/db SecureString cli-param version 1", p)
	}
	if stderr := a.aws("", true, "ssm", "get-parameter", "--name", "/cli/nope"); !strings.Contains(stderr, "ParameterNotFound") {
		t.Errorf("get-parameter of a missing one: got %q, want ParameterNotFound", stderr)
	}
}

package localaws_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/slipway-ml/slipway/internal/localaws/localawstest"
)

func TestSecretsManagerThroughTheSDK(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := secretsmanager.NewFromConfig(sdkConfig(localawstest.Services(t, "")))

	created, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("prod/db"), SecretString: aws.String("first")})
	if err != nil {
		t.Fatalf("CreateSecret: %v", err)
	}
	arn := aws.ToString(created.ARN)
	if !strings.HasPrefix(arn, "arn:aws:secretsmanager:us-east-1:000000000000:secret:prod/db-") || len(arn) != len("arn:aws:secretsmanager:us-east-1:000000000000:secret:prod/db-")+6 {
		t.Errorf("ARN: got %q, want arn:aws:secretsmanager:us-east-1:000000000000:secret:prod/db-XXXXXX", arn)
	}
	_, err = c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("prod/db"), SecretString: aws.String("again")})
	if code := apiCode(err); code != "ResourceExistsException" {
		t.Errorf("second CreateSecret: got %v (%s), want ResourceExistsException", err, code)
	}

	put, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(arn), SecretString: aws.String("second")})
	if err != nil {
		t.Fatalf("PutSecretValue: %v", err)
	}
	// By name, full ARN and partial ARN, the current version is the new one.
	for _, id := range []string{"prod/db", arn, arn[:len(arn)-7]} {
		got, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
		if err != nil {
			t.Fatalf("GetSecretValue %s: %v", id, err)
		}
		if aws.ToString(got.SecretString) != "second" || aws.ToString(got.VersionId) != aws.ToString(put.VersionId) || aws.ToString(got.ARN) != arn {
			t.Errorf("GetSecretValue %s: got %q version %s arn %s, want \"second\" version %s arn %s",
				id, aws.ToString(got.SecretString), aws.ToString(got.VersionId), aws.ToString(got.ARN), aws.ToString(put.VersionId), arn)
		}
		if got.CreatedDate == nil || got.CreatedDate.IsZero() {
			t.Errorf("GetSecretValue %s: no CreatedDate", id)
		}
	}
	prev, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("prod/db"), VersionStage: aws.String("AWSPREVIOUS")})
	if err != nil || aws.ToString(prev.SecretString) != "first" {
		t.Errorf("AWSPREVIOUS: got %v, %v, want \"first\"", prev, err)
	}
	cur, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("prod/db"), VersionStage: aws.String("AWSCURRENT")})
	if err != nil || aws.ToString(cur.SecretString) != "second" {
		t.Errorf("AWSCURRENT: got %v, %v, want \"second\"", cur, err)
	}

	// A binary secret comes back as its bytes.
	bin := []byte{0, 1, 2, 0xff, 'k', 'e', 'y'}
	if _, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("bin"), SecretBinary: bin}); err != nil {
		t.Fatalf("CreateSecret binary: %v", err)
	}
	got, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("bin")})
	if err != nil || !bytes.Equal(got.SecretBinary, bin) || got.SecretString != nil {
		t.Errorf("binary secret: got %v %v, %v, want %v and no string", got.SecretBinary, got.SecretString, err, bin)
	}

	_, err = c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("missing")})
	var nf *smtypes.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Errorf("GetSecretValue missing: got %v, want ResourceNotFoundException", err)
	}

	// Deleting with a recovery window hides it; forcing removes it.
	del, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("bin")})
	if err != nil || del.DeletionDate == nil {
		t.Fatalf("DeleteSecret: got %v, %v, want a deletion date", del, err)
	}
	_, err = c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("bin")})
	if code := apiCode(err); code != "InvalidRequestException" {
		t.Errorf("GetSecretValue of a deleted secret: got %v, want InvalidRequestException", err)
	}
	if _, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("prod/db"), ForceDeleteWithoutRecovery: aws.Bool(true)}); err != nil {
		t.Fatalf("DeleteSecret forced: %v", err)
	}
	if _, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)}); !errors.As(err, &nf) {
		t.Errorf("GetSecretValue after a forced delete: got %v, want ResourceNotFoundException", err)
	}
	if _, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("prod/db"), SecretString: aws.String("x")}); err != nil {
		t.Errorf("CreateSecret after a forced delete: %v", err)
	}
	_, err = c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("both"), SecretString: aws.String("x"), SecretBinary: []byte("y")})
	if code := apiCode(err); code != "InvalidParameterException" {
		t.Errorf("CreateSecret with both values: got %v, want InvalidParameterException", err)
	}
}

func TestSSMParametersThroughTheSDK(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := ssm.NewFromConfig(sdkConfig(localawstest.Services(t, "")))

	put, err := c.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/prod/db/password"), Value: aws.String("hunter22"), Type: ssmtypes.ParameterTypeSecureString})
	if err != nil || put.Version != 1 {
		t.Fatalf("PutParameter: got %v, %v, want version 1", put, err)
	}
	_, err = c.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/prod/db/password"), Value: aws.String("other"), Type: ssmtypes.ParameterTypeSecureString})
	var exists *ssmtypes.ParameterAlreadyExists
	if !errors.As(err, &exists) {
		t.Errorf("PutParameter without Overwrite: got %v, want ParameterAlreadyExists", err)
	}
	put, err = c.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/prod/db/password"), Value: aws.String("hunter23"), Overwrite: aws.Bool(true)})
	if err != nil || put.Version != 2 {
		t.Fatalf("PutParameter with Overwrite: got %v, %v, want version 2", put, err)
	}

	got, err := c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/prod/db/password"), WithDecryption: aws.Bool(true)})
	if err != nil {
		t.Fatalf("GetParameter: %v", err)
	}
	p := got.Parameter
	if aws.ToString(p.Value) != "hunter23" || p.Type != ssmtypes.ParameterTypeSecureString || p.Version != 2 ||
		aws.ToString(p.ARN) != "arn:aws:ssm:us-east-1:000000000000:parameter/prod/db/password" {
		t.Errorf("GetParameter decrypted: got value %q type %s version %d arn %s, want hunter23 SecureString 2 arn:aws:ssm:us-east-1:000000000000:parameter/prod/db/password",
			aws.ToString(p.Value), p.Type, p.Version, aws.ToString(p.ARN))
	}
	enc, err := c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/prod/db/password")})
	if err != nil || strings.Contains(aws.ToString(enc.Parameter.Value), "hunter23") || aws.ToString(enc.Parameter.Value) == "" {
		t.Errorf("GetParameter without decryption: got %v, %v, want an opaque value", enc, err)
	}

	if _, err := c.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("plain"), Value: aws.String("v"), Type: ssmtypes.ParameterTypeString}); err != nil {
		t.Fatalf("PutParameter String: %v", err)
	}
	byARN, err := c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("arn:aws:ssm:us-east-1:000000000000:parameter/plain")})
	if err != nil || aws.ToString(byARN.Parameter.Value) != "v" {
		t.Errorf("GetParameter by ARN: got %v, %v, want v", byARN, err)
	}

	if _, err := c.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String("/prod/db/password")}); err != nil {
		t.Fatalf("DeleteParameter: %v", err)
	}
	var nf *ssmtypes.ParameterNotFound
	if _, err := c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/prod/db/password"), WithDecryption: aws.Bool(true)}); !errors.As(err, &nf) {
		t.Errorf("GetParameter after delete: got %v, want ParameterNotFound", err)
	}
	if _, err := c.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String("/prod/db/password")}); !errors.As(err, &nf) {
		t.Errorf("DeleteParameter twice: got %v, want ParameterNotFound", err)
	}
	for _, name := range []string{"/aws/reserved", "no/leading/slash", "/trailing/"} {
		_, err := c.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(name), Value: aws.String("v"), Type: ssmtypes.ParameterTypeString})
		if code := apiCode(err); code != "ValidationException" {
			t.Errorf("PutParameter %q: got %v, want ValidationException", name, err)
		}
	}
}

func TestSecretsAndParametersSurviveARestartOwnerOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	url := localawstest.Services(t, dir)
	if _, err := secretsmanager.NewFromConfig(sdkConfig(url)).CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("kept"), SecretString: aws.String("kept-value")}); err != nil {
		t.Fatal(err)
	}
	if _, err := ssm.NewFromConfig(sdkConfig(url)).PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/kept"), Value: aws.String("kept-param"), Type: ssmtypes.ParameterTypeSecureString}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"secretsmanager/secrets.json", "ssm/parameters.json"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatalf("state file: %v", err)
		}
		if perm := st.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s: got mode %o, want 600", f, perm)
		}
	}

	again := localawstest.Services(t, dir) // a second endpoint on the same data
	sv, err := secretsmanager.NewFromConfig(sdkConfig(again)).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("kept")})
	if err != nil || aws.ToString(sv.SecretString) != "kept-value" {
		t.Errorf("secret after a restart: got %v, %v, want kept-value", sv, err)
	}
	pv, err := ssm.NewFromConfig(sdkConfig(again)).GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/kept"), WithDecryption: aws.Bool(true)})
	if err != nil || aws.ToString(pv.Parameter.Value) != "kept-param" {
		t.Errorf("parameter after a restart: got %v, %v, want kept-param", pv, err)
	}
}

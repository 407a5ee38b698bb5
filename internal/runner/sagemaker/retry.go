package sagemaker

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
)

// Bounds of the backoff between retries of a throttled or failed call.
const (
	retryMin = 200 * time.Millisecond
	retryMax = 20 * time.Second
)

// throttleCodes are the error codes AWS services answer when a caller is
// over its rate.
var throttleCodes = map[string]bool{
	"ThrottlingException": true, "Throttling": true, "ThrottledException": true,
	"TooManyRequestsException": true, "RequestLimitExceeded": true, "RequestThrottled": true,
	"RequestThrottledException": true, "ProvisionedThroughputExceededException": true,
	"SlowDown": true, "LimitExceededException": true,
}

// transientCodes are other errors worth trying again.
var transientCodes = map[string]bool{
	"InternalFailure": true, "InternalServerError": true, "InternalError": true, "ServiceUnavailable": true,
	"ServiceUnavailableException": true, "RequestTimeout": true, "RequestTimeoutException": true,
	"ExpiredToken": true, "ExpiredTokenException": true, "IDPCommunicationError": true,
}

// errorCode returns the AWS error code of err, or "".
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// retryable reports whether a call that failed with err may succeed if
// tried again: throttling, 5xx answers, expired credentials (the SDK
// refreshes them) and network errors.
func retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	code := errorCode(err)
	if throttleCodes[code] || transientCodes[code] {
		return true
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() >= 500 {
		return true
	}
	if code != "" {
		return false // an answer from the service that will not change
	}
	var invalid *smithy.InvalidParamsError
	var ser *smithy.SerializationError
	if errors.As(err, &invalid) || errors.As(err, &ser) {
		return false
	}
	return true // no answer: a network error
}

// notFound reports whether err says the training job does not exist.
// SageMaker answers DescribeTrainingJob for an unknown name with a
// ValidationException "Requested resource not found".
func notFound(err error) bool {
	switch errorCode(err) {
	case "ResourceNotFound", "ResourceNotFoundException":
		return true
	case "ValidationException":
		var ae smithy.APIError
		errors.As(err, &ae)
		msg := strings.ToLower(ae.ErrorMessage())
		return strings.Contains(msg, "not found") || strings.Contains(msg, "does not exist")
	}
	return false
}

// backoff is a capped exponential backoff with full jitter, so that many
// callers throttled together do not come back together.
type backoff struct {
	min, max, cur time.Duration
}

func newBackoff(min, max time.Duration) *backoff { return &backoff{min: min, max: max} }

// next returns the next wait: uniformly within [cur/2, cur], cur doubling
// from min up to max.
func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(b.cur*2, b.max)
	}
	return jitter(b.cur)
}

// reset starts the backoff over from min.
func (b *backoff) reset() { b.cur = 0 }

// jitter returns a random duration within [d/2, d].
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// retry calls f until it succeeds, fails for good, or ctx ends; throttling
// and transient errors are retried with jittered backoff, never returned.
func (r *Runner) retry(ctx context.Context, log *slog.Logger, op string, f func() error) error {
	b := newBackoff(retryMin, min(retryMax, max(r.cfg.PollMax, retryMin)))
	for {
		r.budgets[op].spend()
		err := f()
		if !retryable(err) {
			if err != nil && ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		d := b.next()
		log.Debug("retrying AWS call", "op", op, "in", d, "err", err)
		if serr := sleep(ctx, d); serr != nil {
			return errors.Join(serr, err)
		}
	}
}

package metrics

import (
	"context"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go/middleware"
)

// awsCountID names the middleware in the SDK's stack.
const awsCountID = "SlipwayMetrics"

// AWSAPIOptions returns the AWS SDK client options that count every request
// attempt, and the attempts that were throttled, by service and operation.
// Pass them as aws.Config.APIOptions (or a client's Options.APIOptions).
func (m *Metrics) AWSAPIOptions() []func(*middleware.Stack) error {
	if m == nil {
		return nil
	}
	return []func(*middleware.Stack) error{func(s *middleware.Stack) error {
		// First in the deserialize step, which is inside the retry loop:
		// each attempt is counted, and the operation's deserializer, after
		// it, has turned the response into an API error when it returns.
		return s.Deserialize.Add(middleware.DeserializeMiddlewareFunc(awsCountID, m.countAWS), middleware.Before)
	}}
}

var throttles = retry.IsErrorThrottles(retry.DefaultThrottles)

func (m *Metrics) countAWS(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
	out, md, err := next.HandleDeserialize(ctx, in)
	service, op := awsmiddleware.GetServiceID(ctx), awsmiddleware.GetOperationName(ctx)
	m.awsCalls.WithLabelValues(service, op).Inc()
	if err != nil && throttles.IsErrorThrottle(err).Bool() {
		m.awsThrottles.WithLabelValues(service, op).Inc()
	}
	return out, md, err
}

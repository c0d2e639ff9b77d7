package awssm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"

	"github.com/routines-dev/routines/internal/secrets"
)

// retryable is the SDK's own judgement of which failures are worth trying
// again: connection errors, 5xx, 429 and the throttling error codes.
var retryable = retry.IsErrorRetryables(retry.DefaultRetryables)

// callError translates a failed GetSecretValue into an error that names
// the failure but not the answer's body, and marks the failures worth
// trying again.
func callError(err error) error {
	described := describe(err)
	if errors.Is(err, context.DeadlineExceeded) || retryable.IsErrorRetryable(err) == aws.TrueTernary {
		return secrets.Transient(described)
	}
	return described
}

// describe says what went wrong: AWS's error code and message when the
// answer holds them, the HTTP status when it is not AWS's JSON.
func describe(err error) error {
	status := statusCode(err)
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		msg := withStatus(apiErr.ErrorCode()+": "+apiErr.ErrorMessage(), status)
		if apiErr.ErrorCode() == "ResourceNotFoundException" {
			return fmt.Errorf("%s: %w", msg, secrets.ErrNotFound)
		}
		return errors.New(msg)
	}
	var deserErr *smithy.DeserializationError
	if errors.As(err, &deserErr) {
		if status >= http.StatusMultipleChoices {
			return errors.New(withStatus(strings.ToLower(http.StatusText(status)), status))
		}
		return errors.New("answer is not Secrets Manager's JSON")
	}
	return fmt.Errorf("request failed: %w", err)
}

// statusCode returns the HTTP status of the answer err came from, or 0.
func statusCode(err error) int {
	var respErr *awshttp.ResponseError
	if errors.As(err, &respErr) {
		return respErr.HTTPStatusCode()
	}
	return 0
}

// withStatus appends the HTTP status to msg when there was an answer.
func withStatus(msg string, status int) string {
	if status == 0 {
		return msg
	}
	return fmt.Sprintf("%s (%d)", msg, status)
}

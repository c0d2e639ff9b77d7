package vault

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/hashicorp/vault/api"

	"github.com/routines-dev/routines/internal/secrets"
)

// requestError translates a failed request into an error that names the
// failure but not the request's token or the answer's body, and marks the
// failures worth trying again.
func requestError(err error) error {
	var respErr *api.ResponseError
	if errors.As(err, &respErr) {
		return newStatusError(respErr)
	}
	if isTransportFailure(err) {
		return secrets.Transient(fmt.Errorf("request failed: %w", err))
	}
	return fmt.Errorf("request failed: %w", err)
}

// statusError is an error answer from Vault.
type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string { return fmt.Sprintf("%s (%d)", e.msg, e.status) }

// newStatusError describes an error answer by Vault's messages and status.
// An answer Vault's error shape does not fit is described by its status
// alone, since its body could hold anything.
func newStatusError(r *api.ResponseError) error {
	err := &statusError{status: r.StatusCode, msg: strings.ToLower(http.StatusText(r.StatusCode))}
	if !r.RawError && len(r.Errors) > 0 {
		err.msg = strings.Join(r.Errors, "; ")
	}
	if r.StatusCode >= 500 || r.StatusCode == http.StatusTooManyRequests {
		return secrets.Transient(err)
	}
	return err
}

// isForbidden reports whether Vault refused the request's token.
func isForbidden(err error) bool {
	var statusErr *statusError
	return errors.As(err, &statusErr) && statusErr.status == http.StatusForbidden
}

// isTransportFailure reports whether err is a timeout or a connection
// Vault refused or dropped: failures that may not happen again.
func isTransportFailure(err error) bool {
	var netErr net.Error
	return errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &netErr) && netErr.Timeout()) ||
		errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET)
}

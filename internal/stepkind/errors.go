package stepkind

import (
	"errors"
	"time"

	"github.com/routines-dev/routines/internal/routine"
)

// Error is a failed attempt that a step kind describes for the standard
// error payload: its code (routine.CodeHTTPStatus, CodeAuth, …; the
// engine's step_failed when empty), whether another try may succeed, and
// how long the other system asked to wait before it.
type Error struct {
	Code      string
	Retryable bool
	// After is the wait the other system asked for (an HTTP Retry-After);
	// the engine waits at least that long before the next try.
	After time.Duration
	Err   error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// ErrorCode returns Code, for the engine.
func (e *Error) ErrorCode() string { return e.Code }

// CanRetry reports whether another try may succeed, for the engine.
func (e *Error) CanRetry() bool { return e.Retryable }

// RetryAfter returns After, for the engine.
func (e *Error) RetryAfter() time.Duration { return e.After }

// Fail returns an *Error with code and retryable around err.
func Fail(code string, retryable bool, err error) *Error {
	return &Error{Code: code, Retryable: retryable, Err: err}
}

// FailInput fails a step for good on an action it cannot send, with the
// code unsafe_value when a value would have changed the structure of the
// request (routine.ErrUnsafeValue).
func FailInput(err error) *Error {
	if errors.Is(err, routine.ErrUnsafeValue) {
		return Fail(routine.CodeUnsafeValue, false, err)
	}
	return Fail("", false, err)
}

// Describe reads what err tells of itself through the methods of *Error
// (or a kind's own error type with the same methods): the code ("" when
// it names none), whether another try may succeed (true when it does not
// say), and the wait asked for.
func Describe(err error) (code string, retryable bool, after time.Duration) {
	retryable = true
	var c interface{ ErrorCode() string }
	if errors.As(err, &c) {
		code = c.ErrorCode()
	}
	var r interface{ CanRetry() bool }
	if errors.As(err, &r) {
		retryable = r.CanRetry()
	}
	var a interface{ RetryAfter() time.Duration }
	if errors.As(err, &a) {
		after = a.RetryAfter()
	}
	return code, retryable, after
}

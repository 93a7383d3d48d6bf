package controllers

import (
	"errors"
	"fmt"
)

// errorKind says how the reconciler goes on after a step fails. It is decided where the
// error is made, not where it is handled.
type errorKind int

const (
	// transient: retry soon with jittered exponential backoff (the error is returned).
	transient errorKind = iota
	// waiting: something else must happen first (a Secret appears); a watch or the resync
	// brings the object back, no error is returned.
	waiting
	// stalled: a human must act (a conflicting queue); retried only at the resync period so
	// that a fix is noticed, without a hot loop.
	stalled
)

// stepError is a failed reconcile step: the condition reason and message to show, and how
// to go on. Messages never contain credentials.
type stepError struct {
	kind    errorKind
	reason  string
	message string
	err     error
}

func (e *stepError) Error() string {
	if e.err != nil {
		return fmt.Sprintf("%s: %s: %v", e.reason, e.message, e.err)
	}
	return e.reason + ": " + e.message
}

func (e *stepError) Unwrap() error { return e.err }

func newStepError(kind errorKind, reason string, err error, format string, args ...any) *stepError {
	return &stepError{kind: kind, reason: reason, message: fmt.Sprintf(format, args...), err: err}
}

// asStepError returns err as a *stepError, wrapping an unexpected error as transient.
func asStepError(err error, reason string) *stepError {
	var se *stepError
	if errors.As(err, &se) {
		return se
	}
	return &stepError{kind: transient, reason: reason, message: err.Error(), err: err}
}

package api

import (
	"errors"
	"fmt"
	"net/http"
)

// Error codes carried in Error.Code.
const (
	CodeInvalid             = "InvalidArgument"
	CodeNotFound            = "NotFound"
	CodeAlreadyExists       = "AlreadyExists"
	CodeConflict            = "Conflict"
	CodeInUse               = "InUse"
	CodeUnauthorized        = "Unauthorized"
	CodeForbidden           = "Forbidden"
	CodeTooLarge            = "RequestTooLarge"
	CodeIdempotencyMismatch = "IdempotencyKeyMismatch"
	CodeGone                = "Gone"
	CodeUnavailable         = "Unavailable"
	CodeInternal            = "Internal"
	CodeMethodNotAllowed    = "MethodNotAllowed"
	CodeUnsupportedMedia    = "UnsupportedMediaType"
	// CodeCSRFTokenInvalid refuses a change made with a session cookie
	// but without the session's X-CSRF-Token header.
	CodeCSRFTokenInvalid = "CSRFTokenInvalid"
	// CodeTooManyRequests refuses a sign-in during a lock-out after
	// failed ones; Retry-After says when to try again.
	CodeTooManyRequests = "TooManyRequests"
)

// Error is the body of every failed request:
//
//	{"error": {"code": "...", "message": "...", "field": "...", "hint": "..."}}
//
// It is also a Go error, so handlers and clients pass it around as one.
type Error struct {
	// Status is the HTTP status; not serialized in the body.
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// Field is the JSON path of the offending input, e.g. "spec.flavor".
	Field string `json:"field,omitempty"`
	// Hint says what would be valid.
	Hint string `json:"hint,omitempty"`
}

// ErrorBody wraps Error as it appears on the wire.
type ErrorBody struct {
	Error *Error `json:"error"`
}

func (e *Error) Error() string {
	s := e.Message
	if e.Field != "" {
		s = e.Field + ": " + s
	}
	if e.Hint != "" {
		s += " (" + e.Hint + ")"
	}
	return s
}

// Invalid returns a 400 error about a field.
func Invalid(field, hint, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: CodeInvalid, Field: field, Hint: hint, Message: fmt.Sprintf(format, args...)}
}

// NotFound returns a 404 error for a kind and name.
func NotFound(kind, name string) *Error {
	return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: fmt.Sprintf("%s %q not found", kind, name)}
}

// Conflict returns a 409 error.
func Conflict(format string, args ...any) *Error {
	return &Error{Status: http.StatusConflict, Code: CodeConflict, Message: fmt.Sprintf(format, args...),
		Hint: "read the object again and retry with its current resourceVersion"}
}

// StatusOf returns the HTTP status of err if it is (or wraps) an *Error,
// else 500.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) && e.Status != 0 {
		return e.Status
	}
	return http.StatusInternalServerError
}

// IsNotFound reports whether err is (or wraps) a NotFound API error.
func IsNotFound(err error) bool { return hasCode(err, CodeNotFound) }

// IsConflict reports whether err is (or wraps) a Conflict API error.
func IsConflict(err error) bool { return hasCode(err, CodeConflict) }

// IsAlreadyExists reports whether err is (or wraps) an AlreadyExists error.
func IsAlreadyExists(err error) bool { return hasCode(err, CodeAlreadyExists) }

func hasCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

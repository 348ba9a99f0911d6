package ec2

import (
	"bufio"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"

	"github.com/ouroboros-cloud/ouro/api"
)

// Namespaces of the two APIs' XML answers.
const (
	EC2Namespace = "http://ec2.amazonaws.com/doc/2016-11-15/"
	STSNamespace = "https://sts.amazonaws.com/doc/2011-06-15/"
)

// API versions served.
const (
	EC2Version = "2016-11-15"
	STSVersion = "2011-06-15"
)

// Error is an answer with an AWS error code. Status is 4xx for client
// faults (SDKs retry a 5xx for minutes).
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns a client fault (400) with code.
func Errorf(code, format string, a ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: code, Message: fmt.Sprintf(format, a...)}
}

// Common AWS error codes.
const (
	CodeInvalidParameterValue       = "InvalidParameterValue"
	CodeInvalidParameter            = "InvalidParameter"
	CodeUnknownParameter            = "UnknownParameter"
	CodeMissingParameter            = "MissingParameter"
	CodeInvalidParameterCombination = "InvalidParameterCombination"
	CodeInvalidAction               = "InvalidAction"
	CodeUnauthorizedOperation       = "UnauthorizedOperation"
	CodeDryRunOperation             = "DryRunOperation"
	CodeDependencyViolation         = "DependencyViolation"
	CodeIncorrectState              = "IncorrectState"
	CodeIdempotentParameterMismatch = "IdempotentParameterMismatch"
	CodeInternalError               = "InternalError"
	CodeUnavailable                 = "Unavailable"
	CodeOptInRequired               = "OptInRequired"
)

func invalidValue(format string, a ...any) *Error {
	return Errorf(CodeInvalidParameterValue, format, a...)
}

func missing(name string) *Error {
	return Errorf(CodeMissingParameter, "The request must contain the parameter %s", name)
}

func unauthorized() *Error {
	return &Error{Status: http.StatusForbidden, Code: CodeUnauthorizedOperation,
		Message: "You are not authorized to perform this operation."}
}

// notFound is a missing thing's answer with its exact code
// (InvalidInstanceID.NotFound, InvalidGroup.NotFound, …).
func notFound(code, format string, a ...any) *Error {
	return Errorf(code, format, a...)
}

// fromAPI turns an error of the API server (an *api.Error) into an AWS
// error: invalid input is InvalidParameterValue, a refusal
// UnauthorizedOperation, a conflict IncorrectState, an object in use
// DependencyViolation; what is not a client fault stays a 5xx. notFound,
// when not nil, answers a 404.
func fromAPI(err error, nf *Error) error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var ae *api.Error
	if !errors.As(err, &ae) {
		return err
	}
	msg := ae.Error()
	switch {
	case ae.Status == http.StatusNotFound && nf != nil:
		return nf
	case ae.Status == http.StatusUnauthorized, ae.Status == http.StatusForbidden:
		return unauthorized()
	case ae.Code == api.CodeInUse:
		return Errorf(CodeDependencyViolation, "%s", msg)
	case ae.Code == api.CodeIdempotencyMismatch:
		return Errorf(CodeIdempotentParameterMismatch, "%s", msg)
	case ae.Status == http.StatusConflict, ae.Status == http.StatusGone:
		return Errorf(CodeIncorrectState, "%s", msg)
	case ae.Status == http.StatusTooManyRequests:
		return &Error{Status: http.StatusServiceUnavailable, Code: "RequestLimitExceeded", Message: msg}
	case ae.Status >= 500:
		return &Error{Status: ae.Status, Code: CodeUnavailable, Message: msg}
	case ae.Status >= 400:
		return invalidValue("%s", msg)
	}
	return err
}

// Response starts every EC2 answer: the request id, set by the handler.
type Response struct {
	RequestID string `xml:"requestId"`
}

func (r *Response) setRequestID(id string) { r.RequestID = id }

// Return is the answer of actions that report success alone.
type Return struct {
	Response
	Return bool `xml:"return"`
}

type requestIDSetter interface{ setRequestID(string) }

// bodyWriter is an answer that writes its members itself, by hand, as
// encoding/xml would (large answers: DescribeInstances).
type bodyWriter interface{ writeBody(w xmlWriter) }

// writeXML writes v as the element name in namespace ns.
func writeXML(w http.ResponseWriter, status int, name, ns string, v any) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(status)
	w.Write([]byte(xml.Header))
	if b, ok := v.(bodyWriter); ok {
		xw := xmlWriter{bufio.NewWriterSize(w, 32<<10)}
		xw.WriteString("<" + name)
		if ns != "" {
			xw.WriteString(` xmlns="` + ns + `"`)
		}
		xw.WriteByte('>')
		b.writeBody(xw)
		xw.close(name)
		xw.Flush()
		return
	}
	enc := xml.NewEncoder(w)
	start := xml.StartElement{Name: xml.Name{Local: name}}
	if ns != "" {
		start.Attr = []xml.Attr{{Name: xml.Name{Local: "xmlns"}, Value: ns}}
	}
	if err := enc.EncodeElement(v, start); err != nil {
		// The status is sent; the client sees a truncated body.
		return
	}
	enc.Flush()
}

type ec2ErrorBody struct {
	Errors struct {
		Error []xmlError `xml:"Error"`
	} `xml:"Errors"`
	RequestID string `xml:"RequestID"`
}

type xmlError struct {
	Type    string `xml:"Type,omitempty"`
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

type stsErrorBody struct {
	Error     xmlError `xml:"Error"`
	RequestID string   `xml:"RequestId"`
}

// writeError answers e in the service's error shape.
func writeError(w http.ResponseWriter, svc *service, requestID string, e *Error) {
	if svc != nil && svc.name == "sts" {
		typ := "Sender"
		if e.Status >= 500 {
			typ = "Receiver"
		}
		writeXML(w, e.Status, "ErrorResponse", STSNamespace, stsErrorBody{Error: xmlError{Type: typ, Code: e.Code, Message: e.Message}, RequestID: requestID})
		return
	}
	var b ec2ErrorBody
	b.Errors.Error = []xmlError{{Code: e.Code, Message: e.Message}}
	b.RequestID = requestID
	writeXML(w, e.Status, "Response", "", b)
}

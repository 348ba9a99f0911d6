// Package sigv4 verifies AWS Signature Version 4 on requests, as AWS
// does for the EC2 Query API and STS: the canonical request is rebuilt
// from the headers the client lists as signed, the payload hash is
// computed from the body (and must match x-amz-content-sha256 when
// sent), any region is accepted in the credential scope, the request
// date must lie within a clock-skew window, and signatures are compared
// in constant time. Failures carry AWS's error codes (Error.Code).
package sigv4

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"
)

// Algorithm is the only signing algorithm accepted.
const Algorithm = "AWS4-HMAC-SHA256"

// MaxSkew is how far a request's date may lie from the server's clock,
// as AWS allows.
const MaxSkew = 5 * time.Minute

const timeFormat = "20060102T150405Z"

// AWS error codes of failed verifications.
const (
	CodeMissingAuthenticationToken = "MissingAuthenticationToken"
	CodeIncompleteSignature        = "IncompleteSignature"
	CodeAuthFailure                = "AuthFailure"
	CodeSignatureDoesNotMatch      = "SignatureDoesNotMatch"
	CodeRequestExpired             = "RequestExpired"
)

// Error is a failed verification, with the AWS error code to answer.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func fail(code, format string, a ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, a...)}
}

// ErrUnknownKey is returned by a Secrets lookup for an access key id it
// does not know (or no longer honours).
var ErrUnknownKey = errors.New("unknown access key")

// Secrets finds the secret access key of an access key id. An error
// other than ErrUnknownKey means the lookup itself failed.
type Secrets func(ctx context.Context, accessKeyID string) (secret string, err error)

// Credential is what a verified request was signed with.
type Credential struct {
	AccessKeyID string
	// Date is the scope's day (YYYYMMDD); Region and Service the rest of
	// the scope.
	Date, Region, Service string
	// Time is the request's signing time.
	Time time.Time
}

// Verifier checks signatures.
type Verifier struct {
	// Secrets finds secrets by access key id.
	Secrets Secrets
	// Services are the accepted services of the credential scope (say
	// "ec2", "sts").
	Services []string
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Verify checks r's signature, body being r's whole body (already read).
// An *Error is a failure to answer the client with; any other error
// means the secrets lookup failed.
func (v *Verifier) Verify(ctx context.Context, r *http.Request, body []byte) (*Credential, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		if r.URL.Query().Has("X-Amz-Signature") {
			return nil, fail(CodeAuthFailure, "presigned URLs are not supported; sign the Authorization header")
		}
		return nil, fail(CodeMissingAuthenticationToken, "Request is missing Authentication Token")
	}
	auth, err := parseAuthorization(h)
	if err != nil {
		return nil, err
	}
	c := auth.cred
	if !slices.Contains(v.Services, c.Service) {
		return nil, fail(CodeSignatureDoesNotMatch, "Credential should be scoped to a valid service: %q is not one of %s", c.Service, strings.Join(v.Services, ", "))
	}
	if !slices.Contains(auth.signed, "host") {
		return nil, fail(CodeSignatureDoesNotMatch, "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
	}
	date := r.Header.Get("X-Amz-Date")
	dateHeader := "x-amz-date"
	if date == "" {
		date, dateHeader = r.Header.Get("Date"), "date"
	}
	if date == "" {
		return nil, fail(CodeIncompleteSignature, "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
	}
	if !slices.Contains(auth.signed, dateHeader) {
		return nil, fail(CodeSignatureDoesNotMatch, "the %s header must be signed", dateHeader)
	}
	t, err := time.Parse(timeFormat, date)
	if err != nil {
		t, err = http.ParseTime(date)
	}
	if err != nil {
		return nil, fail(CodeIncompleteSignature, "the date %q is not in ISO 8601 basic format (%s)", clip(date), "YYYYMMDD'T'HHMMSS'Z'")
	}
	t = t.UTC()
	if t.Format("20060102") != c.Date {
		return nil, fail(CodeSignatureDoesNotMatch, "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: %q != %q", c.Date, t.Format("20060102"))
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	if d := now().Sub(t); d > MaxSkew || d < -MaxSkew {
		return nil, fail(CodeRequestExpired, "Request has expired: signed at %s, the server's time is %s (at most %s apart)",
			t.Format(timeFormat), now().UTC().Format(timeFormat), MaxSkew)
	}
	sum := sha256.Sum256(body)
	payload := hex.EncodeToString(sum[:])
	if sent := r.Header.Get("X-Amz-Content-Sha256"); sent != "" && sent != payload {
		return nil, fail(CodeSignatureDoesNotMatch, "The provided 'x-amz-content-sha256' header does not match what was computed.")
	}
	canon, err := canonicalRequest(r, auth.signed, payload)
	if err != nil {
		return nil, err
	}
	secret, err := v.Secrets(ctx, c.AccessKeyID)
	if errors.Is(err, ErrUnknownKey) {
		return nil, fail(CodeAuthFailure, "AWS was not able to validate the provided access credentials")
	}
	if err != nil {
		return nil, fmt.Errorf("look up access key: %w", err)
	}
	c.Time = t
	want := signature(secret, c, t, canon)
	got, err := hex.DecodeString(auth.signature)
	if err != nil || !hmac.Equal(want, got) {
		return nil, fail(CodeSignatureDoesNotMatch, "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.")
	}
	return &c, nil
}

type authorization struct {
	cred      Credential
	signed    []string
	signature string
}

// parseAuthorization parses "AWS4-HMAC-SHA256 Credential=…,
// SignedHeaders=…, Signature=…".
func parseAuthorization(h string) (*authorization, error) {
	alg, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	if alg != Algorithm {
		return nil, fail(CodeIncompleteSignature, "unsupported Authorization scheme %q: sign with %s", clip(alg), Algorithm)
	}
	var a authorization
	var cred, signed string
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, fail(CodeIncompleteSignature, "Authorization header is malformed near %q", clip(part))
		}
		switch k {
		case "Credential":
			cred = v
		case "SignedHeaders":
			signed = v
		case "Signature":
			a.signature = v
		}
	}
	if cred == "" || signed == "" || a.signature == "" {
		return nil, fail(CodeIncompleteSignature, "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters.")
	}
	scope := strings.Split(cred, "/")
	if len(scope) != 5 || scope[4] != "aws4_request" || scope[0] == "" {
		return nil, fail(CodeIncompleteSignature, "Credential should be AccessKeyId/YYYYMMDD/region/service/aws4_request, not %q", clip(cred))
	}
	if _, err := time.Parse("20060102", scope[1]); err != nil {
		return nil, fail(CodeIncompleteSignature, "the Credential's date %q is not YYYYMMDD", clip(scope[1]))
	}
	a.cred = Credential{AccessKeyID: scope[0], Date: scope[1], Region: scope[2], Service: scope[3]}
	a.signed = strings.Split(signed, ";")
	if len(a.signed) > 64 || !sort.StringsAreSorted(a.signed) {
		return nil, fail(CodeIncompleteSignature, "SignedHeaders must be sorted, lower-case and at most 64")
	}
	for _, s := range a.signed {
		if s == "" || s != strings.ToLower(s) {
			return nil, fail(CodeIncompleteSignature, "SignedHeaders must be sorted, lower-case and at most 64")
		}
	}
	return &a, nil
}

// canonicalRequest builds AWS's canonical request from r.
func canonicalRequest(r *http.Request, signed []string, payload string) (string, error) {
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	b.WriteString(escape(path, false))
	b.WriteByte('\n')
	b.WriteString(canonicalQuery(r))
	b.WriteByte('\n')
	for _, name := range signed {
		var vals []string
		switch name {
		case "host":
			vals = []string{r.Host}
		case "content-length":
			vals = []string{fmt.Sprint(r.ContentLength)}
		default:
			vals = r.Header.Values(name)
		}
		if len(vals) == 0 {
			return "", fail(CodeSignatureDoesNotMatch, "the signed header %q is not in the request", clip(name))
		}
		for i, v := range vals {
			vals[i] = strings.Join(strings.Fields(v), " ")
		}
		b.WriteString(name)
		b.WriteByte(':')
		b.WriteString(strings.Join(vals, ","))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(signed, ";"))
	b.WriteByte('\n')
	b.WriteString(payload)
	return b.String(), nil
}

func canonicalQuery(r *http.Request) string {
	q := r.URL.Query()
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		vs := slices.Clone(q[k])
		sort.Strings(vs)
		for _, v := range vs {
			parts = append(parts, escape(k, true)+"="+escape(v, true))
		}
	}
	return strings.Join(parts, "&")
}

// escape percent-encodes all but RFC 3986's unreserved characters (and
// '/' unless slash).
func escape(s string, slash bool) string {
	const hexd = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == '~' || (c == '/' && !slash) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexd[c>>4])
		b.WriteByte(hexd[c&15])
	}
	return b.String()
}

// signature computes the request's signature.
func signature(secret string, c Credential, t time.Time, canon string) []byte {
	scope := c.Date + "/" + c.Region + "/" + c.Service + "/aws4_request"
	sum := sha256.Sum256([]byte(canon))
	sts := Algorithm + "\n" + t.Format(timeFormat) + "\n" + scope + "\n" + hex.EncodeToString(sum[:])
	k := mac([]byte("AWS4"+secret), c.Date)
	k = mac(k, c.Region)
	k = mac(k, c.Service)
	k = mac(k, "aws4_request")
	return mac(k, sts)
}

func mac(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

package sigv4

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

const (
	keyID  = "AKIAIOSFODNN7EXAMPLE"
	secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
)

var now = time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)

func secrets(_ context.Context, id string) (string, error) {
	if id == keyID {
		return secret, nil
	}
	return "", ErrUnknownKey
}

// signed returns a request signed by aws-sdk-go-v2's signer, as the SDKs
// and the CLI send it.
func signed(t *testing.T, body string, at time.Time, service, sec string, edit func(*http.Request)) *http.Request {
	t.Helper()
	r := httptest.NewRequest("POST", "https://ouro.example:8443/", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	sum := sha256.Sum256([]byte(body))
	err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: keyID, SecretAccessKey: sec},
		r, hex.EncodeToString(sum[:]), service, "eu-west-1", at)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(r)
	}
	return r
}

func TestVerify(t *testing.T) {
	const body = "Action=DescribeInstances&Version=2016-11-15"
	tests := []struct {
		name    string
		req     func(t *testing.T) *http.Request
		body    string
		code    string
		service string
	}{
		{name: "ec2", req: func(t *testing.T) *http.Request { return signed(t, body, now, "ec2", secret, nil) }},
		{name: "sts", service: "sts", req: func(t *testing.T) *http.Request { return signed(t, body, now, "sts", secret, nil) }},
		{name: "within skew", req: func(t *testing.T) *http.Request { return signed(t, body, now.Add(-4*time.Minute), "ec2", secret, nil) }},
		{name: "wrong secret", code: CodeSignatureDoesNotMatch, req: func(t *testing.T) *http.Request { return signed(t, body, now, "ec2", "x"+secret[1:], nil) }},
		{name: "expired", code: CodeRequestExpired, req: func(t *testing.T) *http.Request { return signed(t, body, now.Add(-6*time.Minute), "ec2", secret, nil) }},
		{name: "future", code: CodeRequestExpired, req: func(t *testing.T) *http.Request { return signed(t, body, now.Add(6*time.Minute), "ec2", secret, nil) }},
		{name: "tampered body", code: CodeSignatureDoesNotMatch, body: "Action=RunInstances&Version=2016-11-15",
			req: func(t *testing.T) *http.Request { return signed(t, body, now, "ec2", secret, nil) }},
		{name: "tampered signed header", code: CodeSignatureDoesNotMatch, req: func(t *testing.T) *http.Request {
			return signed(t, body, now, "ec2", secret, func(r *http.Request) { r.Header.Set("Content-Type", "text/plain") })
		}},
		{name: "tampered date", code: CodeSignatureDoesNotMatch, req: func(t *testing.T) *http.Request {
			return signed(t, body, now, "ec2", secret, func(r *http.Request) { r.Header.Set("X-Amz-Date", now.Add(time.Second).Format(timeFormat)) })
		}},
		{name: "unsigned header changes nothing", req: func(t *testing.T) *http.Request {
			return signed(t, body, now, "ec2", secret, func(r *http.Request) { r.Header.Set("X-Extra", "1") })
		}},
		{name: "host not signed", code: CodeSignatureDoesNotMatch, req: func(t *testing.T) *http.Request {
			return signed(t, body, now, "ec2", secret, func(r *http.Request) {
				r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "content-type;host;", "content-type;", 1))
			})
		}},
		{name: "other host", code: CodeSignatureDoesNotMatch, req: func(t *testing.T) *http.Request {
			return signed(t, body, now, "ec2", secret, func(r *http.Request) { r.Host = "evil.example:8443" })
		}},
		{name: "unknown key", code: CodeAuthFailure, req: func(t *testing.T) *http.Request {
			return signed(t, body, now, "ec2", secret, func(r *http.Request) {
				r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), keyID, "AKIAAAAAAAAAAAAAAAAA", 1))
			})
		}},
		{name: "other service", code: CodeSignatureDoesNotMatch, req: func(t *testing.T) *http.Request { return signed(t, body, now, "s3", secret, nil) }},
		{name: "missing", code: CodeMissingAuthenticationToken, req: func(t *testing.T) *http.Request {
			return httptest.NewRequest("POST", "/", strings.NewReader(body))
		}},
		{name: "garbage", code: CodeIncompleteSignature, req: func(t *testing.T) *http.Request {
			r := httptest.NewRequest("POST", "/", strings.NewReader(body))
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=x")
			return r
		}},
		{name: "other scheme", code: CodeIncompleteSignature, req: func(t *testing.T) *http.Request {
			r := httptest.NewRequest("POST", "/", strings.NewReader(body))
			r.Header.Set("Authorization", "Bearer x")
			return r
		}},
		{name: "content hash mismatch", code: CodeSignatureDoesNotMatch, req: func(t *testing.T) *http.Request {
			return signed(t, body, now, "ec2", secret, func(r *http.Request) { r.Header.Set("X-Amz-Content-Sha256", strings.Repeat("0", 64)) })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := []string{"ec2"}
			if tt.service != "" {
				svc = []string{tt.service}
			}
			v := &Verifier{Secrets: secrets, Services: svc, Now: func() time.Time { return now }}
			r := tt.req(t)
			b := body
			if tt.body != "" {
				b = tt.body
			}
			c, err := v.Verify(context.Background(), r, []byte(b))
			if tt.code == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if c.AccessKeyID != keyID || c.Region != "eu-west-1" {
					t.Errorf("credential = %+v", c)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Code != tt.code {
				t.Fatalf("Verify error = %v, want code %s", err, tt.code)
			}
		})
	}
}

func TestVerifyLookupFailure(t *testing.T) {
	v := &Verifier{Services: []string{"ec2"}, Now: func() time.Time { return now },
		Secrets: func(context.Context, string) (string, error) { return "", errors.New("etcd down") }}
	_, err := v.Verify(context.Background(), signed(t, "a=b", now, "ec2", secret, nil), []byte("a=b"))
	var e *Error
	if err == nil || errors.As(err, &e) {
		t.Fatalf("Verify error = %v, want a lookup failure", err)
	}
}

func FuzzParseAuthorization(f *testing.F) {
	f.Add("AWS4-HMAC-SHA256 Credential=AKIA/20261207/r/ec2/aws4_request, SignedHeaders=host;x-amz-date, Signature=00")
	f.Fuzz(func(t *testing.T, h string) {
		r := httptest.NewRequest("POST", "/", bytes.NewReader(nil))
		r.Header.Set("Authorization", h)
		v := &Verifier{Secrets: secrets, Services: []string{"ec2"}, Now: func() time.Time { return now }}
		v.Verify(context.Background(), r, nil)
	})
}

// Package ec2test makes aws-sdk-go-v2 EC2 clients for tests and
// benchmarks that drive a real server's EC2-compatible API.
package ec2test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/ouroboros-cloud/ouro/api"
)

// Client returns an EC2 client for the server at url (https), trusting
// the CA certificate caPEM and signing with key (its secret included,
// as created). It never retries: a benchmark times single calls, a test
// sees the first answer.
func Client(url string, caPEM []byte, key *api.AccessKey) *awsec2.Client {
	return awsec2.New(awsec2.Options{
		Region: "ouro-1", BaseEndpoint: aws.String(url), Retryer: aws.NopRetryer{},
		Credentials: credentials.NewStaticCredentialsProvider(key.Spec.AccessKeyID, key.Status.Secret, ""),
		HTTPClient:  HTTPClient(&http.Transport{TLSClientConfig: &tls.Config{RootCAs: Pool(caPEM)}}),
	})
}

// Pool returns a certificate pool of the CA certificate caPEM.
func Pool(caPEM []byte) *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return pool
}

// HTTPClient returns an HTTP client for aws-sdk-go-v2 over base that
// keeps the SDK's request bodies from racing net/http.
//
// The SDK closes a request's body as soon as the response has arrived.
// net/http, once it has sent the body's ContentLength bytes, reads the
// body once more to check it is at its end, and uses the body's WriteTo
// when it has one; smithy-go's body answers WriteTo after Close with
// io.EOF, which io.Copy returns as an error, so the transport takes the
// request as failed and closes the connection under the response being
// read: "deserialization failed … use of closed network connection".
// A server that answers as soon as it has the body (ours does, on
// loopback) wins that race about once in fifty calls. Without WriteTo
// the last read is a Read, whose io.EOF is the end of the body.
func HTTPClient(base http.RoundTripper) *http.Client {
	return &http.Client{Transport: bodiesWithoutWriteTo{base}}
}

type bodiesWithoutWriteTo struct{ base http.RoundTripper }

// readCloser hides every method of its body but Read and Close.
type readCloser struct{ io.ReadCloser }

func (t bodiesWithoutWriteTo) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return t.base.RoundTrip(r)
	}
	out := r.Clone(r.Context())
	out.Body = readCloser{r.Body}
	return t.base.RoundTrip(out)
}

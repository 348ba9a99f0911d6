// Package ec2test makes aws-sdk-go-v2 EC2 clients for tests and
// benchmarks that drive a real server's EC2-compatible API.
package ec2test

import (
	"crypto/tls"
	"crypto/x509"
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
		HTTPClient:  &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: Pool(caPEM)}}},
	})
}

// Pool returns a certificate pool of the CA certificate caPEM.
func Pool(caPEM []byte) *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return pool
}

package ec2_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/apitest"
)

// cloud is the real API server over embedded etcd, with the SDK's
// clients pointed at it.
type cloud struct {
	*apitest.Server
}

func start(t *testing.T) *cloud {
	t.Helper()
	return &cloud{Server: apitest.Start(t, apitest.Config{})}
}

// key makes an access key for user (made with role in project) and
// returns it with its secret.
func (c *cloud) key(t *testing.T, user, project string, role api.Role) *api.AccessKey {
	t.Helper()
	tok := c.Token(t, user, project, role)
	var k api.AccessKey
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Client(t, tok).Do(ctx, http.MethodPost, "/v1/accesskeys", nil, api.AccessKeyRequest{Project: project}, &k); err != nil {
		t.Fatalf("create access key: %v", err)
	}
	return &k
}

func (c *cloud) config(k *api.AccessKey) aws.Config {
	return aws.Config{
		Region:      "eu-west-1",
		Credentials: credentials.NewStaticCredentialsProvider(k.Spec.AccessKeyID, k.Status.Secret, ""),
		Retryer:     func() aws.Retryer { return aws.NopRetryer{} },
	}
}

func (c *cloud) ec2(k *api.AccessKey) *awsec2.Client {
	return awsec2.NewFromConfig(c.config(k), func(o *awsec2.Options) { o.BaseEndpoint = aws.String(c.URL) })
}

func (c *cloud) sts(k *api.AccessKey) *sts.Client {
	return sts.NewFromConfig(c.config(k), func(o *sts.Options) { o.BaseEndpoint = aws.String(c.URL) })
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var _ = retry.NewStandard

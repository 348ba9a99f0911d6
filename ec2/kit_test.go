package ec2_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/ec2"
	"github.com/ouroboros-cloud/ouro/internal/apitest"
	"github.com/ouroboros-cloud/ouro/internal/ec2test"
	"github.com/ouroboros-cloud/ouro/store"
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
		HTTPClient:  ec2test.HTTPClient(http.DefaultTransport.(*http.Transport).Clone()),
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

// image stores a Ready container image in project and returns its name.
func (c *cloud) image(t *testing.T, project, name string) {
	t.Helper()
	c.Create(t, &api.Image{Metadata: api.ObjectMeta{Name: name, Project: project},
		Spec: api.ImageSpec{Format: api.FormatOCI}, Status: api.ImageStatus{Phase: "Ready", Driver: api.DriverContainer}})
}

// pool makes a floating IP pool.
func (c *cloud) pool(t *testing.T) {
	t.Helper()
	c.Do(t, http.MethodPost, "/v1/floatingippools", &api.FloatingIPPool{Metadata: api.ObjectMeta{Name: "public"},
		Spec: api.FloatingIPPoolSpec{CIDR: "192.0.2.0/24", Start: "192.0.2.10", End: "192.0.2.20"}}, nil)
}

// run marks every instance of project as its agent would once it runs:
// placed on host h1, running, with an address.
func (c *cloud) runAll(t *testing.T, project string) {
	t.Helper()
	objs, _, err := c.Store.List(context.Background(), api.InstanceKind, project, store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range objs {
		c.Update(t, api.InstanceKind, project, o.Meta().Name, func(o api.Object) {
			in := o.(*api.Instance)
			in.Status.Host = "h1"
			if in.WantsRunning() {
				in.Status.Phase = api.PhaseRunning
			} else {
				in.Status.Phase = api.PhaseStopped
			}
			if len(in.Status.Interfaces) == 0 {
				in.Status.Interfaces = []api.Interface{{Network: in.Spec.Networks[0].Network, IP: fmt.Sprintf("10.0.0.%d", 10+i), MAC: "02:00:00:00:00:01"}}
			}
		})
	}
}

// awsCode returns the AWS error code of err ("" if none).
func awsCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// wantCode fails unless err carries code.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := awsCode(err); got != code {
		t.Fatalf("error = %v (code %q), want code %s", err, got, code)
	}
}

var storeAll = store.ListOptions{}

// ec2ID is ec2.ID for an object.
func ec2ID(prefix string, o api.Object) string { return ec2.ID(prefix, o.Meta().UID) }

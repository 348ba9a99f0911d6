package ec2_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ouroboros-cloud/ouro/api"
)

func TestProjectsAreApart(t *testing.T) {
	c := start(t)
	c.Project(t, "b")
	c.image(t, "default", "debian")
	a := c.ec2(c.key(t, "alice", "default", api.RoleMember))
	b := c.ec2(c.key(t, "bob", "b", api.RoleAdmin))
	ctx := ctx(t)
	run, err := a.RunInstances(ctx, &awsec2.RunInstancesInput{ImageId: aws.String("debian"), InstanceType: "tiny", MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	sg, err := a.CreateSecurityGroup(ctx, &awsec2.CreateSecurityGroupInput{GroupName: aws.String("secret"), Description: aws.String("a")})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(run.Instances[0].InstanceId)
	out, err := b.DescribeInstances(ctx, &awsec2.DescribeInstancesInput{})
	if err != nil || len(out.Reservations) != 0 {
		t.Errorf("B sees instances: %v, %v", out, err)
	}
	_, err = b.DescribeInstances(ctx, &awsec2.DescribeInstancesInput{InstanceIds: []string{id}})
	wantCode(t, err, "InvalidInstanceID.NotFound")
	_, err = b.TerminateInstances(ctx, &awsec2.TerminateInstancesInput{InstanceIds: []string{id}})
	wantCode(t, err, "InvalidInstanceID.NotFound")
	_, err = b.DeleteSecurityGroup(ctx, &awsec2.DeleteSecurityGroupInput{GroupId: sg.GroupId})
	wantCode(t, err, "InvalidGroup.NotFound")
	_, err = b.CreateTags(ctx, &awsec2.CreateTagsInput{Resources: []string{id}, Tags: []types.Tag{{Key: aws.String("x"), Value: aws.String("y")}}})
	wantCode(t, err, "InvalidID")
	_, err = b.RunInstances(ctx, &awsec2.RunInstancesInput{ImageId: aws.String("debian"), InstanceType: "tiny", MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		SecurityGroupIds: []string{aws.ToString(sg.GroupId)}})
	wantCode(t, err, "InvalidAMIID.NotFound")
	groups, err := b.DescribeSecurityGroups(ctx, &awsec2.DescribeSecurityGroupsInput{})
	if err != nil || len(groups.SecurityGroups) != 1 || aws.ToString(groups.SecurityGroups[0].GroupName) != "default" {
		t.Errorf("B's groups = %v, %v", groups, err)
	}
	tags, err := b.DescribeTags(ctx, &awsec2.DescribeTagsInput{})
	if err != nil || len(tags.Tags) != 0 {
		t.Errorf("B's tags = %v, %v", tags, err)
	}
	if c.Get(t, api.InstanceKind, "default", instanceName(t, c, id)) == nil {
		t.Error("B's calls removed A's instance")
	}
}

func TestViewerMayNotRun(t *testing.T) {
	c := start(t)
	c.image(t, "default", "debian")
	v := c.ec2(c.key(t, "vera", "default", api.RoleViewer))
	m := c.ec2(c.key(t, "max", "default", api.RoleMember))
	ctx := ctx(t)
	in := &awsec2.RunInstancesInput{ImageId: aws.String("debian"), InstanceType: "tiny", MinCount: aws.Int32(1), MaxCount: aws.Int32(1)}
	_, err := v.RunInstances(ctx, in)
	wantCode(t, err, "UnauthorizedOperation")
	in.DryRun = aws.Bool(true)
	_, err = v.RunInstances(ctx, in)
	wantCode(t, err, "UnauthorizedOperation")
	_, err = m.RunInstances(ctx, in)
	wantCode(t, err, "DryRunOperation")
	_, err = v.CreateSecurityGroup(ctx, &awsec2.CreateSecurityGroupInput{GroupName: aws.String("x"), Description: aws.String("x")})
	wantCode(t, err, "UnauthorizedOperation")
	if _, err := v.DescribeInstances(ctx, &awsec2.DescribeInstancesInput{}); err != nil {
		t.Errorf("a viewer's DescribeInstances: %v", err)
	}
	objs, _, _ := c.Store.List(context.Background(), api.InstanceKind, "default", storeAll)
	if len(objs) != 0 {
		t.Errorf("%d instances made by refused or dry runs", len(objs))
	}
}

// raw sends a form body signed (or not) as the SDKs sign, and returns
// the status and body.
func (c *cloud) raw(t *testing.T, k *api.AccessKey, body string, at time.Time, edit func(*http.Request)) (int, string) {
	t.Helper()
	r, err := http.NewRequest(http.MethodPost, c.URL+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	sum := sha256.Sum256([]byte(body))
	if k != nil {
		if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: k.Spec.AccessKeyID, SecretAccessKey: k.Status.Secret},
			r, hex.EncodeToString(sum[:]), "ec2", "us-east-1", at); err != nil {
			t.Fatal(err)
		}
	}
	if edit != nil {
		edit(r)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestSignatureRefused(t *testing.T) {
	c := start(t)
	k := c.key(t, "alice", "default", api.RoleMember)
	const body = "Action=DescribeInstances&Version=2016-11-15"
	wrong := *k
	wrong.Status.Secret = strings.Repeat("x", 40)
	unknown := *k
	unknown.Spec.AccessKeyID = "AKIAAAAAAAAAAAAAAAAA"
	for _, tt := range []struct {
		name string
		key  *api.AccessKey
		at   time.Time
		edit func(*http.Request)
		code string
	}{
		{"good", k, time.Now(), nil, ""},
		{"wrong secret", &wrong, time.Now(), nil, "SignatureDoesNotMatch"},
		{"unknown key", &unknown, time.Now(), nil, "AuthFailure"},
		{"expired", k, time.Now().Add(-10 * time.Minute), nil, "RequestExpired"},
		{"replayed out of the window", k, time.Now().Add(-5*time.Minute - 5*time.Second), nil, "RequestExpired"},
		{"from the future", k, time.Now().Add(10 * time.Minute), nil, "RequestExpired"},
		{"tampered signed header", k, time.Now(), func(r *http.Request) { r.Header.Set("Content-Type", "application/x-www-form-urlencoded") }, "SignatureDoesNotMatch"},
		{"bad authorization", k, time.Now(), func(r *http.Request) { r.Header.Set("Authorization", "AWS4-HMAC-SHA256 garbage") }, "IncompleteSignature"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, out := c.raw(t, tt.key, body, tt.at, tt.edit)
			if tt.code == "" {
				if status != http.StatusOK || !strings.Contains(out, "<DescribeInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">") {
					t.Fatalf("%d %s", status, out)
				}
				return
			}
			if status < 400 || status >= 500 || !strings.Contains(out, "<Code>"+tt.code+"</Code>") || !strings.Contains(out, "<Response><Errors><Error>") {
				t.Fatalf("%d %s, want a 4xx %s", status, out, tt.code)
			}
		})
	}
}

func TestHostileForms(t *testing.T) {
	c := start(t)
	c.image(t, "default", "debian")
	k := c.key(t, "alice", "default", api.RoleMember)
	run := "Action=RunInstances&Version=2016-11-15&ImageId=debian&InstanceType=tiny&MinCount=1&"
	for _, tt := range []struct {
		name, body, code string
	}{
		{"deep index", "Action=DescribeInstances&Version=2016-11-15&Filter.999999.Name=x&Filter.999999.Value.1=y", "InvalidParameterValue"},
		{"index zero", "Action=DescribeInstances&Version=2016-11-15&InstanceId.0=i-1", "InvalidParameterValue"},
		{"huge count", run + "MaxCount=1000000", "InstanceLimitExceeded"},
		{"negative count", run + "MaxCount=-1", "InvalidParameterValue"},
		{"bad user data", run + "MaxCount=1&UserData=%%%not-base64", "InvalidParameterValue"},
		{"unknown parameter", run + "MaxCount=1&Bogus=1", "UnknownParameter"},
		{"repeated parameter", run + "MaxCount=1&MaxCount=2", "InvalidParameter"},
		{"unknown action", "Action=LaunchMissiles&Version=2016-11-15", "InvalidAction"},
		{"no action", "Version=2016-11-15", "MissingParameter"},
		{"bad filter", "Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=owner-alias&Filter.1.Value.1=x", "InvalidParameterValue"},
		{"bad max results", "Action=DescribeInstances&Version=2016-11-15&MaxResults=100000", "InvalidParameterValue"},
		{"bad token", "Action=DescribeInstances&Version=2016-11-15&MaxResults=5&NextToken=zzz", "InvalidParameterValue"},
		{"reserved tag", run + "MaxCount=1&TagSpecification.1.ResourceType=instance&TagSpecification.1.Tag.1.Key=aws%3Aname&TagSpecification.1.Tag.1.Value=x", "InvalidParameterValue"},
		{"internal tag", run + "MaxCount=1&TagSpecification.1.ResourceType=instance&TagSpecification.1.Tag.1.Key=ec2.ouro.dev%2Fclient-token&TagSpecification.1.Tag.1.Value=x", "InvalidParameterValue"},
		{"control in tag", run + "MaxCount=1&TagSpecification.1.ResourceType=instance&TagSpecification.1.Tag.1.Key=a%0Ab&TagSpecification.1.Tag.1.Value=x", "InvalidParameterValue"},
		{"long tag value", run + "MaxCount=1&TagSpecification.1.ResourceType=instance&TagSpecification.1.Tag.1.Key=a&TagSpecification.1.Tag.1.Value=" + strings.Repeat("v", 257), "InvalidParameterValue"},
		{"many tags", run + "MaxCount=1&TagSpecification.1.ResourceType=instance" + manyTags(51), "TagLimitExceeded"},
		{"bad dry run", run + "MaxCount=1&DryRun=maybe", "InvalidParameterValue"},
		{"monitoring", run + "MaxCount=1&Monitoring.Enabled=true", "UnsupportedOperation"},
		{"bad zone", run + "MaxCount=1&Placement.AvailabilityZone=a%20b", "InvalidParameterValue"},
		{"many filters", "Action=DescribeInstances&Version=2016-11-15" + manyFilters(60), "InvalidParameterValue"},
		{"huge value", "Action=DescribeInstances&Version=2016-11-15&InstanceId.1=" + strings.Repeat("a", 70000), "InvalidParameterValue"},
		{"bad form", "Action=DescribeInstances&Version=2016-11-15&%zz", "InvalidParameterValue"},
		{"bad protocol", "Action=AuthorizeSecurityGroupIngress&Version=2016-11-15&GroupName=default&IpPermissions.1.IpProtocol=gre&IpPermissions.1.IpRanges.1.CidrIp=0.0.0.0/0", "InvalidParameterValue"},
		{"bad cidr", "Action=AuthorizeSecurityGroupIngress&Version=2016-11-15&GroupName=default&IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=1&IpPermissions.1.ToPort=2&IpPermissions.1.IpRanges.1.CidrIp=300.0.0.0/0", "InvalidParameterValue"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, out := c.raw(t, k, tt.body, time.Now(), nil)
			if status < 400 || status >= 500 || !strings.Contains(out, "<Code>"+tt.code+"</Code>") {
				t.Fatalf("%d %s, want a 4xx %s", status, clipOut(out), tt.code)
			}
		})
	}
	big := "Action=DescribeInstances&Version=2016-11-15&X=" + strings.Repeat("a", 2<<20)
	if status, _ := c.raw(t, k, big, time.Now(), nil); status != http.StatusRequestEntityTooLarge {
		t.Errorf("a 2 MiB body: %d", status)
	}
	objs, _, _ := c.Store.List(context.Background(), api.InstanceKind, "default", storeAll)
	if len(objs) != 0 {
		t.Errorf("hostile forms made %d instances", len(objs))
	}
	g := c.Get(t, api.SecurityGroupKind, "default", "default").(*api.SecurityGroup)
	if len(g.Spec.Rules) != 2 {
		t.Logf("default group rules: %+v", g.Spec.Rules)
	}
}

func manyFilters(n int) string {
	var b bytes.Buffer
	for i := 1; i <= n; i++ {
		b.WriteString("&Filter." + itoa(i) + ".Name=tag-key&Filter." + itoa(i) + ".Value.1=x")
	}
	return b.String()
}

func itoa(i int) string { return url.QueryEscape(strconv.Itoa(i)) }

func clipOut(s string) string {
	if len(s) > 300 {
		return s[:300]
	}
	return s
}

func TestSecretSealedInEtcd(t *testing.T) {
	c := start(t)
	k := c.key(t, "alice", "default", api.RoleMember)
	if len(k.Spec.AccessKeyID) != 20 || !strings.HasPrefix(k.Spec.AccessKeyID, "AKIA") || len(k.Status.Secret) != 40 {
		t.Fatalf("key %q secret %q", k.Spec.AccessKeyID, k.Status.Secret)
	}
	resp, err := c.Etcd.Get(context.Background(), "/ouro/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		if bytes.Contains(kv.Value, []byte(k.Status.Secret)) {
			t.Fatalf("etcd key %s holds the secret in plain text", kv.Key)
		}
	}
	// The key is listed without its secret, sealed or not.
	var list api.List[api.AccessKey]
	c.Do(t, http.MethodGet, "/v1/accesskeys", nil, &list)
	if len(list.Items) != 1 || list.Items[0].Status.SealedSecret != "" || list.Items[0].Status.Secret != "" {
		t.Fatalf("list = %+v", list.Items)
	}
}

func TestAccessKeysBelongToTheirUser(t *testing.T) {
	c := start(t)
	c.Project(t, "b")
	ak := c.key(t, "alice", "default", api.RoleMember)
	bk := c.key(t, "bob", "b", api.RoleMember)
	alice := c.Client(t, c.Token(t, "alice", "default", api.RoleMember))
	cx := ctx(t)
	var list api.List[api.AccessKey]
	if _, err := alice.Do(cx, http.MethodGet, "/v1/accesskeys", nil, nil, &list); err != nil || len(list.Items) != 1 || list.Items[0].Spec.User != "alice" {
		t.Fatalf("alice's list = %+v, %v", list.Items, err)
	}
	if _, err := alice.Do(cx, http.MethodGet, "/v1/accesskeys/"+bk.Metadata.Name, nil, nil, nil); api.StatusOf(err) != http.StatusNotFound {
		t.Errorf("alice reads bob's key: %v", err)
	}
	if _, err := alice.Do(cx, http.MethodDelete, "/v1/accesskeys/"+bk.Metadata.Name, nil, nil, nil); api.StatusOf(err) != http.StatusNotFound {
		t.Errorf("alice deletes bob's key: %v", err)
	}
	if _, err := alice.Do(cx, http.MethodPost, "/v1/accesskeys", nil, api.AccessKeyRequest{Project: "b"}, nil); api.StatusOf(err) != http.StatusNotFound {
		t.Errorf("alice makes a key for project b: %v", err)
	}
	// A key stops working when its user loses the role, or is deleted.
	ec := c.ec2(ak)
	if _, err := ec.DescribeInstances(cx, &awsec2.DescribeInstancesInput{}); err != nil {
		t.Fatal(err)
	}
	c.Do(t, http.MethodDelete, "/v1/users/alice", nil, nil)
	_, err := ec.DescribeInstances(cx, &awsec2.DescribeInstancesInput{})
	wantCode(t, err, "AuthFailure")
	if objs, _, _ := c.Store.List(cx, api.AccessKeyKind, "", storeAll); len(objs) != 1 {
		t.Errorf("%d access keys left, want bob's", len(objs))
	}
	if _, err := c.ec2(bk).DeleteKeyPair(cx, &awsec2.DeleteKeyPairInput{KeyName: aws.String("none")}); err != nil {
		t.Errorf("bob's key: %v", err)
	}
}

func TestOnlySignedFormsReachEC2(t *testing.T) {
	c := start(t)
	for _, tt := range []struct {
		method, ctype, auth string
		ec2                 bool
	}{
		{http.MethodGet, "", "", false},
		{http.MethodPost, "application/x-www-form-urlencoded", "", false},
		{http.MethodPost, "application/json", "AWS4-HMAC-SHA256 Credential=x", false},
		{http.MethodPost, "application/x-www-form-urlencoded; charset=utf-8", "AWS4-HMAC-SHA256 Credential=x", true},
	} {
		r, _ := http.NewRequest(tt.method, c.URL+"/", strings.NewReader("Action=DescribeRegions&Version=2016-11-15"))
		if tt.ctype != "" {
			r.Header.Set("Content-Type", tt.ctype)
		}
		if tt.auth != "" {
			r.Header.Set("Authorization", tt.auth)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := strings.Contains(string(b), "<Response><Errors>"); got != tt.ec2 {
			t.Errorf("%s %q %q reached EC2: %v (%d %s)", tt.method, tt.ctype, tt.auth, got, resp.StatusCode, clipOut(string(b)))
		}
	}
}

// manyTags returns n instance tags of a RunInstances form.
func manyTags(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "&TagSpecification.1.Tag.%d.Key=k%d&TagSpecification.1.Tag.%d.Value=v", i, i, i)
	}
	return b.String()
}

package ec2_test

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/ouroboros-cloud/ouro/api"
)

func TestGetCallerIdentity(t *testing.T) {
	c := start(t)
	k := c.key(t, "alice", "default", api.RoleMember)
	out, err := c.sts(k).GetCallerIdentity(ctx(t), &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatalf("GetCallerIdentity: %v", err)
	}
	if *out.Account != "default" || *out.Arn != "arn:aws:iam::default:user/alice" || *out.UserId != k.Spec.AccessKeyID {
		t.Errorf("identity = %s %s %s", *out.Account, *out.Arn, *out.UserId)
	}
}

func TestGetCallerIdentityRefused(t *testing.T) {
	c := start(t)
	k := c.key(t, "alice", "default", api.RoleMember)
	wrong := *k
	wrong.Status.Secret = "x" + k.Status.Secret[1:]
	_, err := c.sts(&wrong).GetCallerIdentity(ctx(t), &sts.GetCallerIdentityInput{})
	wantCode(t, err, "SignatureDoesNotMatch")
}

package ec2_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

func TestDescribeInstancesPages(t *testing.T) {
	c := start(t)
	c.image(t, "default", "debian")
	ec := c.ec2(c.key(t, "alice", "default", api.RoleMember))
	ctx := ctx(t)
	run, err := ec.RunInstances(ctx, &awsec2.RunInstancesInput{ImageId: aws.String("debian"), InstanceType: "tiny", MinCount: aws.Int32(12), MaxCount: aws.Int32(12),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String("web")}}}}})
	if err != nil || len(run.Instances) != 12 {
		t.Fatalf("RunInstances = %v, %v", run, err)
	}
	seen := map[string]bool{}
	pages := 0
	p := awsec2.NewDescribeInstancesPaginator(ec, &awsec2.DescribeInstancesInput{MaxResults: aws.Int32(5)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		pages++
		for _, r := range out.Reservations {
			seen[aws.ToString(r.Instances[0].InstanceId)] = true
		}
	}
	if pages != 3 || len(seen) != 12 {
		t.Errorf("%d pages, %d instances; want 3 and 12", pages, len(seen))
	}
	// Named web-0 … web-11 by the Name tag; the same objects through REST.
	if c.Get(t, api.InstanceKind, "default", "web-11") == nil {
		t.Error("no instance web-11")
	}
	_, err = ec.DescribeInstances(ctx, &awsec2.DescribeInstancesInput{InstanceIds: []string{"i-00000000000000000"}})
	wantCode(t, err, "InvalidInstanceID.NotFound")
	_, err = ec.DescribeInstances(ctx, &awsec2.DescribeInstancesInput{InstanceIds: []string{"bogus"}})
	wantCode(t, err, "InvalidInstanceID.NotFound")
}

func TestTags(t *testing.T) {
	c := start(t)
	ec := c.ec2(c.key(t, "alice", "default", api.RoleMember))
	ctx := ctx(t)
	sg, err := ec.CreateSecurityGroup(ctx, &awsec2.CreateSecurityGroupInput{GroupName: aws.String("db"), Description: aws.String("d")})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(sg.GroupId)
	if _, err := ec.CreateTags(ctx, &awsec2.CreateTagsInput{Resources: []string{id}, Tags: []types.Tag{
		{Key: aws.String("env"), Value: aws.String("prod")}, {Key: aws.String("team"), Value: aws.String("db")}}}); err != nil {
		t.Fatalf("CreateTags: %v", err)
	}
	g := c.Get(t, api.SecurityGroupKind, "default", "db").(*api.SecurityGroup)
	if g.Metadata.Labels["env"] != "prod" || g.Metadata.Labels["team"] != "db" {
		t.Errorf("labels = %v", g.Metadata.Labels)
	}
	out, err := ec.DescribeTags(ctx, &awsec2.DescribeTagsInput{Filters: []types.Filter{{Name: aws.String("resource-id"), Values: []string{id}}, {Name: aws.String("key"), Values: []string{"env"}}}})
	if err != nil || len(out.Tags) != 1 || aws.ToString(out.Tags[0].Value) != "prod" || out.Tags[0].ResourceType != types.ResourceTypeSecurityGroup {
		t.Fatalf("DescribeTags = %+v, %v", out, err)
	}
	if _, err := ec.DeleteTags(ctx, &awsec2.DeleteTagsInput{Resources: []string{id}, Tags: []types.Tag{{Key: aws.String("env"), Value: aws.String("dev")}, {Key: aws.String("team")}}}); err != nil {
		t.Fatalf("DeleteTags: %v", err)
	}
	g = c.Get(t, api.SecurityGroupKind, "default", "db").(*api.SecurityGroup)
	if len(g.Metadata.Labels) != 1 || g.Metadata.Labels["env"] != "prod" {
		t.Errorf("labels after DeleteTags = %v (a value that does not match keeps the tag)", g.Metadata.Labels)
	}
	checkFreeTextTags(t, c, ec, id)
	_, err = ec.CreateTags(ctx, &awsec2.CreateTagsInput{Resources: []string{"sg-00000000000000000"}, Tags: []types.Tag{{Key: aws.String("a"), Value: aws.String("b")}}})
	wantCode(t, err, "InvalidID")
}

// checkFreeTextTags: a tag a label cannot hold is kept as an annotation,
// answered and filtered on as any tag, moved to a label when its value
// becomes one, and deleted; AWS's limits are kept.
func checkFreeTextTags(t *testing.T, c *cloud, ec *awsec2.Client, id string) {
	t.Helper()
	ctx := ctx(t)
	const name = "My DB server: ünïcode & spaces"
	if _, err := ec.CreateTags(ctx, &awsec2.CreateTagsInput{Resources: []string{id}, Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String(name)},
		{Key: aws.String("cost center"), Value: aws.String("")}}}); err != nil {
		t.Fatalf("CreateTags of free text: %v", err)
	}
	// The longest tag AWS allows, in three-byte characters, fits.
	longest := types.Tag{Key: aws.String(strings.Repeat("€", 128)), Value: aws.String(strings.Repeat("€", 256))}
	if _, err := ec.CreateTags(ctx, &awsec2.CreateTagsInput{Resources: []string{id}, Tags: []types.Tag{longest}}); err != nil {
		t.Fatalf("CreateTags of the longest tag: %v", err)
	}
	if _, err := ec.DeleteTags(ctx, &awsec2.DeleteTagsInput{Resources: []string{id}, Tags: []types.Tag{{Key: longest.Key}}}); err != nil {
		t.Fatal(err)
	}
	g := c.Get(t, api.SecurityGroupKind, "default", "db").(*api.SecurityGroup)
	if g.Metadata.Annotations["tag.ec2.ouro.dev/Name"] != name || g.Metadata.Labels["Name"] != "" {
		t.Errorf("free-text Name tag: labels %v, annotations %v", g.Metadata.Labels, g.Metadata.Annotations)
	}
	groups, err := ec.DescribeSecurityGroups(ctx, &awsec2.DescribeSecurityGroupsInput{Filters: []types.Filter{{Name: aws.String("tag:Name"), Values: []string{"My DB*"}}}})
	if err != nil || len(groups.SecurityGroups) != 1 || aws.ToString(groups.SecurityGroups[0].GroupId) != id {
		t.Fatalf("DescribeSecurityGroups tag:Name = %+v, %v", groups, err)
	}
	var got []string
	for _, tag := range groups.SecurityGroups[0].Tags {
		got = append(got, aws.ToString(tag.Key)+"="+aws.ToString(tag.Value))
	}
	if want := []string{"Name=" + name, "cost center=", "env=prod"}; !slices.Equal(got, want) {
		t.Errorf("tags = %q, want %q", got, want)
	}
	// The same key with a label's value moves to the labels.
	if _, err := ec.CreateTags(ctx, &awsec2.CreateTagsInput{Resources: []string{id}, Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String("db-1")}}}); err != nil {
		t.Fatal(err)
	}
	g = c.Get(t, api.SecurityGroupKind, "default", "db").(*api.SecurityGroup)
	if g.Metadata.Labels["Name"] != "db-1" || g.Metadata.Annotations["tag.ec2.ouro.dev/Name"] != "" {
		t.Errorf("Name tag after a label's value: labels %v, annotations %v", g.Metadata.Labels, g.Metadata.Annotations)
	}
	if _, err := ec.DeleteTags(ctx, &awsec2.DeleteTagsInput{Resources: []string{id}, Tags: []types.Tag{{Key: aws.String("cost center")}}}); err != nil {
		t.Fatal(err)
	}
	g = c.Get(t, api.SecurityGroupKind, "default", "db").(*api.SecurityGroup)
	if len(g.Metadata.Annotations) != 0 {
		t.Errorf("annotations after DeleteTags = %v", g.Metadata.Annotations)
	}
	for _, tc := range []struct {
		tags []types.Tag
		code string
	}{
		{[]types.Tag{{Key: aws.String("aws:cloudformation:stack-name"), Value: aws.String("x")}}, "InvalidParameterValue"},
		{[]types.Tag{{Key: aws.String("ec2.ouro.dev/disable-api-stop"), Value: aws.String("true")}}, "InvalidParameterValue"},
		{[]types.Tag{{Key: aws.String(strings.Repeat("k", 129)), Value: aws.String("x")}}, "InvalidParameterValue"},
		{[]types.Tag{{Key: aws.String("k"), Value: aws.String(strings.Repeat("v", 257))}}, "InvalidParameterValue"},
		{[]types.Tag{{Key: aws.String("new\nline"), Value: aws.String("x")}}, "InvalidParameterValue"},
	} {
		_, err := ec.CreateTags(ctx, &awsec2.CreateTagsInput{Resources: []string{id}, Tags: tc.tags})
		wantCode(t, err, tc.code)
	}
	// 2 tags now; 49 more exceed AWS's 50 per resource.
	var many []types.Tag
	for i := range 49 {
		many = append(many, types.Tag{Key: aws.String(fmt.Sprintf("k%d", i)), Value: aws.String("v")})
	}
	_, err = ec.CreateTags(ctx, &awsec2.CreateTagsInput{Resources: []string{id}, Tags: many})
	wantCode(t, err, "TagLimitExceeded")
}

func TestCatalog(t *testing.T) {
	c := start(t)
	ec := c.ec2(c.key(t, "alice", "default", api.RoleViewer))
	ctx := ctx(t)
	zones, err := ec.DescribeAvailabilityZones(ctx, &awsec2.DescribeAvailabilityZonesInput{})
	if err != nil || len(zones.AvailabilityZones) != 1 || aws.ToString(zones.AvailabilityZones[0].ZoneName) != api.ZoneDefault {
		t.Fatalf("DescribeAvailabilityZones = %+v, %v", zones, err)
	}
	regions, err := ec.DescribeRegions(ctx, &awsec2.DescribeRegionsInput{})
	if err != nil || len(regions.Regions) != 1 || aws.ToString(regions.Regions[0].RegionName) != "ouro-1" {
		t.Fatalf("DescribeRegions = %+v, %v", regions, err)
	}
	types_, err := ec.DescribeInstanceTypes(ctx, &awsec2.DescribeInstanceTypesInput{Filters: []types.Filter{{Name: aws.String("vcpu-info.default-vcpus"), Values: []string{"1"}}}})
	if err != nil || len(types_.InstanceTypes) != 2 {
		t.Fatalf("DescribeInstanceTypes = %+v, %v", types_, err)
	}
	_, err = ec.DescribeInstanceTypes(ctx, &awsec2.DescribeInstanceTypesInput{InstanceTypes: []types.InstanceType{"t2.micro"}})
	wantCode(t, err, "InvalidParameterValue")
	attrs, err := ec.DescribeAccountAttributes(ctx, &awsec2.DescribeAccountAttributesInput{AttributeNames: []types.AccountAttributeName{"supported-platforms"}})
	if err != nil || len(attrs.AccountAttributes) != 1 {
		t.Fatalf("DescribeAccountAttributes = %+v, %v", attrs, err)
	}
	enis, err := ec.DescribeNetworkInterfaces(ctx, &awsec2.DescribeNetworkInterfacesInput{})
	if err != nil || len(enis.NetworkInterfaces) != 0 {
		t.Fatalf("DescribeNetworkInterfaces = %+v, %v", enis, err)
	}
}

// TestIDIndexIsOnlyAHint: an instance deleted and made again under the
// same name has a new id; the index, which learnt the old one, must not
// answer the new instance for it.
func TestIDIndexIsOnlyAHint(t *testing.T) {
	c := start(t)
	c.image(t, "default", "debian")
	ec := c.ec2(c.key(t, "alice", "default", api.RoleMember))
	ctx := ctx(t)
	run, err := ec.RunInstances(ctx, &awsec2.RunInstancesInput{ImageId: aws.String("debian"), InstanceType: "tiny", MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String("db")}}}}})
	if err != nil {
		t.Fatalf("RunInstances: %v", err)
	}
	old := aws.ToString(run.Instances[0].InstanceId)
	if _, err := ec.DescribeInstances(ctx, &awsec2.DescribeInstancesInput{InstanceIds: []string{old}}); err != nil {
		t.Fatalf("DescribeInstances(%s): %v", old, err)
	}
	prev := c.Get(t, api.InstanceKind, "default", "db").(*api.Instance)
	c.Remove(t, api.InstanceKind, "default", "db")
	c.Create(t, &api.Instance{Metadata: api.ObjectMeta{Name: "db", Project: "default"}, Spec: prev.Spec})
	_, err = ec.DescribeInstances(ctx, &awsec2.DescribeInstancesInput{InstanceIds: []string{old}})
	wantCode(t, err, "InvalidInstanceID.NotFound")
	fresh := ec2ID("i", c.Get(t, api.InstanceKind, "default", "db"))
	out, err := ec.DescribeInstances(ctx, &awsec2.DescribeInstancesInput{InstanceIds: []string{fresh}})
	if err != nil || aws.ToString(out.Reservations[0].Instances[0].InstanceId) != fresh {
		t.Fatalf("DescribeInstances(%s) = %+v, %v", fresh, out, err)
	}
}

// An instance made through REST names its image by bare name (its
// project's, else a public one): DescribeInstances gives that image's id.
func TestDescribeInstanceImageOfBareName(t *testing.T) {
	c := start(t)
	c.image(t, "default", "debian")
	ec := c.ec2(c.key(t, "alice", "default", api.RoleMember))
	ctx := ctx(t)
	imgs, err := ec.DescribeImages(ctx, &awsec2.DescribeImagesInput{Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"debian"}}}})
	if err != nil || len(imgs.Images) != 1 {
		t.Fatalf("DescribeImages = %+v, %v", imgs, err)
	}
	// A public image of another project, named bare too.
	c.Do(t, http.MethodPost, "/v1/projects", &api.Project{Metadata: api.ObjectMeta{Name: "shared"}}, nil)
	c.Create(t, &api.Image{Metadata: api.ObjectMeta{Name: "alpine", Project: "shared"},
		Spec: api.ImageSpec{Format: api.FormatOCI, Public: true}, Status: api.ImageStatus{Phase: "Ready", Driver: api.DriverContainer}})
	// The server's image informer shows it within the watch's delay.
	var pub *awsec2.DescribeImagesOutput
	wait.ForDetail(t, 10*time.Second, "DescribeImages to show alpine", func() (bool, string) {
		pub, err = ec.DescribeImages(ctx, &awsec2.DescribeImagesInput{Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"alpine"}}}})
		return err == nil && len(pub.Images) == 1, fmt.Sprintf("%v, %v", pub, err)
	})
	c.Create(t, &api.Instance{Metadata: api.ObjectMeta{Name: "rest", Project: "default"}, Spec: api.InstanceSpec{Image: "debian", Flavor: "tiny"}})
	c.Create(t, &api.Instance{Metadata: api.ObjectMeta{Name: "rest2", Project: "default"}, Spec: api.InstanceSpec{Image: "alpine", Flavor: "tiny"}})
	out, err := ec.DescribeInstances(ctx, &awsec2.DescribeInstancesInput{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range out.Reservations {
		got = append(got, aws.ToString(r.Instances[0].ImageId))
	}
	want := []string{aws.ToString(imgs.Images[0].ImageId), aws.ToString(pub.Images[0].ImageId)}
	if !slices.Equal(got, want) {
		t.Errorf("image ids of the REST instances (rest, rest2) = %v, want %v", got, want)
	}
}

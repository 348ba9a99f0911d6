package ec2

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"fmt"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

// TestInstanceXMLMatchesEncoding checks the hand-written encoding of
// reservations against encoding/xml's of the same structs.
func TestInstanceXMLMatchesEncoding(t *testing.T) {
	v := &view{c: &Call{Region: "ouro-1"}, loaded: map[*api.Kind]bool{api.NetworkKind: true, api.SecurityGroupKind: true,
		api.ImageKind: true, api.HostKind: true}, fips: map[string]*api.FloatingIP{
		"b": {Status: api.FloatingIPStatus{Address: "192.0.2.1"}}}}
	v.loaded[api.FloatingIPKind] = true
	var rs []reservation
	for i, name := range []string{"a", "b", "c<&>\"'"} {
		in := &api.Instance{Metadata: api.ObjectMeta{Name: name, Project: "p", UID: fmt.Sprint(i), CreationTimestamp: time.Unix(1700000000, 0),
			Labels: map[string]string{"Name": "web", "x": "y"}},
			Spec: api.InstanceSpec{Image: "p/img", Flavor: "tiny", KeyName: name,
				Networks: []api.NetworkAttachment{{Network: "default", SecurityGroups: []string{"default", "web"}}, {Network: "other"}}},
			Status: api.InstanceStatus{Phase: api.PhaseRunning, Reason: "CrashLoop\t<x>", Message: "m",
				Interfaces: []api.Interface{{Network: "default", IP: "10.0.0.1", MAC: "02:00:00:00:00:01"}}}}
		if i == 2 {
			in.Spec.Networks, in.Status = nil, api.InstanceStatus{}
		}
		it := v.instance(in, i)
		rs = append(rs, reservation{ReservationID: "r-" + name, OwnerID: "p", Groups: it.Groups, Instances: []instanceItem{it}})
	}
	want, err := xml.Marshal(struct {
		XMLName      xml.Name      `xml:"x"`
		Reservations []reservation `xml:"reservationSet>item"`
	}{Reservations: rs})
	if err != nil {
		t.Fatal(err)
	}
	// AWS leaves out an empty tagSet, which encoding/xml cannot say.
	want = bytes.ReplaceAll(want, []byte("<tagSet></tagSet>"), nil)
	var buf bytes.Buffer
	w := xmlWriter{bufio.NewWriter(&buf)}
	w.open("x")
	w.reservations(rs)
	w.close("x")
	w.Flush()
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("hand-written:\n%s\nencoding/xml:\n%s", buf.Bytes(), want)
	}
}

package stack

import (
	"encoding/json"
	"testing"
)

func TestOverlay(t *testing.T) {
	for _, tc := range []struct {
		name            string
		have, want, out string
	}{
		{"a field the stack leaves out is kept",
			`{"cidr":"10.0.0.0/24","gateway":"10.0.0.1"}`, `{"cidr":"10.0.0.0/24"}`, `{"cidr":"10.0.0.0/24","gateway":"10.0.0.1"}`},
		{"an unchanged list element keeps what the server set",
			`{"rules":[{"id":"a1","protocol":"tcp","portMin":22,"portMax":22}]}`, `{"rules":[{"protocol":"tcp","portMin":22}]}`,
			`{"rules":[{"id":"a1","protocol":"tcp","portMin":22,"portMax":22}]}`},
		{"a changed list element is replaced whole",
			`{"rules":[{"id":"a1","protocol":"tcp","portMin":80,"portMax":80},{"id":"b2","protocol":"tcp","portMin":22,"portMax":22}]}`,
			`{"rules":[{"protocol":"tcp","portMin":80},{"protocol":"tcp","portMin":2222}]}`,
			`{"rules":[{"id":"a1","protocol":"tcp","portMin":80,"portMax":80},{"protocol":"tcp","portMin":2222}]}`},
		{"a list of another length is replaced",
			`{"rules":[{"id":"a1","protocol":"tcp","portMin":80,"portMax":80}]}`, `{"rules":[]}`, `{"rules":[]}`},
		{"a scalar is replaced", `{"count":3}`, `{"count":4}`, `{"count":4}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var have, want, out any
			for _, x := range []struct {
				s string
				v *any
			}{{tc.have, &have}, {tc.want, &want}, {tc.out, &out}} {
				if err := json.Unmarshal([]byte(x.s), x.v); err != nil {
					t.Fatal(err)
				}
			}
			got, _ := json.Marshal(overlay(have, want))
			wantOut, _ := json.Marshal(out)
			if string(got) != string(wantOut) {
				t.Errorf("overlay(%s, %s) = %s, want %s", tc.have, tc.want, got, wantOut)
			}
		})
	}
}

package hostnet

import (
	"errors"
	"fmt"
	"testing"

	"github.com/ouroboros-cloud/ouro/netplane"
)

// The loop finds netplane's per-network failures by their method.
var _ networkFailure = (*netplane.NetworkError)(nil)

func TestSplitApplyError(t *testing.T) {
	netA := &netplane.NetworkError{UID: "a", Name: "a", VNI: 1, Err: errors.New("boom")}
	netB := &netplane.NetworkError{UID: "b", Name: "b", VNI: 2, Err: errors.New("bang")}
	other := errors.New("host rules: denied")
	for _, tt := range []struct {
		name     string
		err      error
		nets     []string
		wantRest bool
	}{
		{"nil", nil, nil, false},
		{"one network", fmt.Errorf("netplane: %w", errors.Join(netA)), []string{"a"}, false},
		{"two networks", fmt.Errorf("netplane: %w", errors.Join(netA, netB)), []string{"a", "b"}, false},
		{"network and host", fmt.Errorf("netplane: %w", errors.Join(netA, other)), []string{"a"}, true},
		{"host only", fmt.Errorf("netplane: %w", other), nil, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			nets, rest := SplitApplyError(tt.err)
			if len(nets) != len(tt.nets) {
				t.Errorf("networks %v, want %v", nets, tt.nets)
			}
			for _, uid := range tt.nets {
				if nets[uid] == nil {
					t.Errorf("network %s missing from %v", uid, nets)
				}
			}
			if (rest != nil) != tt.wantRest {
				t.Errorf("rest = %v, want one: %v", rest, tt.wantRest)
			}
		})
	}
}

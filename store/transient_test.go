package store

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestTransient(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"leader changed", rpctypes.ErrLeaderChanged, true},
		{"no leader, wrapped", fmt.Errorf("create: %w", rpctypes.ErrNoLeader), true},
		{"grpc leader changed", fmt.Errorf("txn: %w", rpctypes.ErrGRPCLeaderChanged), true},
		{"timeout", rpctypes.ErrTimeout, true},
		{"proposal dropped", fmt.Errorf("grant lease: %w", status.Error(codes.Unknown, "raft proposal dropped")), true},
		{"not found", ErrNotFound, false},
		{"conflict", fmt.Errorf("update: %w", ErrConflict), false},
		{"permission", status.Error(codes.PermissionDenied, "etcdserver: permission denied"), false},
		{"request too large", rpctypes.ErrRequestTooLarge, false},
		{"cancelled", context.Canceled, false},
		{"other", errors.New("disk full"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Transient(tc.err); got != tc.want {
				t.Errorf("Transient(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

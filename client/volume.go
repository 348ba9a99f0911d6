package client

import (
	"context"
	"fmt"
	"net/url"
	"slices"

	"github.com/ouroboros-cloud/ouro/api"
)

// GetVolume reads a volume.
func (c *Client) GetVolume(ctx context.Context, project, name string) (*api.Volume, error) {
	var v api.Volume
	if err := c.Get(ctx, api.VolumeKind, project, name, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// ResizeVolume grows a volume to sizeBytes.
func (c *Client) ResizeVolume(ctx context.Context, project, name string, sizeBytes int64) (*api.Volume, error) {
	for range maxConflictRetries {
		v, err := c.GetVolume(ctx, project, name)
		if err != nil {
			return nil, err
		}
		v.Spec.SizeBytes = sizeBytes
		err = c.Update(ctx, v)
		if e := asAPIError(err); e != nil && e.Code == api.CodeConflict {
			continue
		}
		if err != nil {
			return nil, err
		}
		return v, nil
	}
	return nil, api.Conflict("volume %s/%s changes too fast", project, name)
}

// UpdateInstance reads an instance, lets change modify it and writes it
// back at the version read, again from a fresh read while the write
// conflicts with another. It returns the instance as stored.
func (c *Client) UpdateInstance(ctx context.Context, project, name string, change func(*api.Instance) error) (*api.Instance, error) {
	for range maxConflictRetries {
		var in api.Instance
		if err := c.Get(ctx, api.InstanceKind, project, name, &in); err != nil {
			return nil, err
		}
		if err := change(&in); err != nil {
			return nil, err
		}
		err := c.Update(ctx, &in)
		if e := asAPIError(err); e != nil && e.Code == api.CodeConflict {
			continue
		}
		if err != nil {
			return nil, err
		}
		return &in, nil
	}
	return nil, api.Conflict("instance %s/%s changes too fast", project, name)
}

// AttachVolume adds volume v to instance's spec.volumes: the server takes
// the volume's claim in the same write, so of two racing attaches of one
// volume exactly one wins (the other gets code InUse). Attaching a volume
// the instance already has succeeds.
func (c *Client) AttachVolume(ctx context.Context, project, instance string, v api.InstanceVolume) (*api.Instance, error) {
	return c.UpdateInstance(ctx, project, instance, func(in *api.Instance) error {
		if slices.ContainsFunc(in.Spec.Volumes, func(o api.InstanceVolume) bool { return o.Name == v.Name }) {
			return nil
		}
		in.Spec.Volumes = append(in.Spec.Volumes, v)
		return nil
	})
}

// DetachVolume removes volume from the spec.volumes of instance, or of
// the instance of the project that uses it when instance is "".
func (c *Client) DetachVolume(ctx context.Context, project, volume, instance string) (*api.Instance, error) {
	if instance == "" {
		all, _, err := ListAll[api.Instance](ctx, c, api.InstanceKind, project, ListOptions{})
		if err != nil {
			return nil, err
		}
		for _, in := range all {
			if slices.ContainsFunc(in.Spec.Volumes, func(o api.InstanceVolume) bool { return o.Name == volume }) {
				instance = in.Metadata.Name
				break
			}
		}
		if instance == "" {
			return nil, fmt.Errorf("volume %s/%s is not attached to an instance", project, volume)
		}
	}
	return c.UpdateInstance(ctx, project, instance, func(in *api.Instance) error {
		in.Spec.Volumes = slices.DeleteFunc(in.Spec.Volumes, func(o api.InstanceVolume) bool { return o.Name == volume })
		return nil
	})
}

// StoragePoolKey reads the Ceph key of a storage pool (hosts and cluster
// admins only).
func (c *Client) StoragePoolKey(ctx context.Context, pool string) (string, error) {
	var out struct {
		Key string `json:"key"`
	}
	if _, err := c.do(ctx, "GET", "/v1/storagepools/"+url.PathEscape(pool)+"/key", nil, nil, nil, &out); err != nil {
		return "", err
	}
	return out.Key, nil
}

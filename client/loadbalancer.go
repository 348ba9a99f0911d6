package client

import (
	"context"
	"net/http"

	"github.com/ouroboros-cloud/ouro/api"
)

// maxConflictRetries bounds the read-modify-write loop of
// UpdateLoadBalancer.
const maxConflictRetries = 16

// GetLoadBalancer reads a load balancer. Its listeners come without their
// private keys.
func (c *Client) GetLoadBalancer(ctx context.Context, project, name string) (*api.LoadBalancer, error) {
	var lb api.LoadBalancer
	if err := c.Get(ctx, api.LoadBalancerKind, project, name, &lb); err != nil {
		return nil, err
	}
	return &lb, nil
}

// ListLoadBalancers returns every load balancer of project ("" for all
// the caller may see).
func (c *Client) ListLoadBalancers(ctx context.Context, project string) ([]api.LoadBalancer, error) {
	items, _, err := ListAll[api.LoadBalancer](ctx, c, api.LoadBalancerKind, project, ListOptions{})
	return items, err
}

// CreateLoadBalancer creates lb in its metadata.project and replaces it
// with the load balancer as the server answers (with its addresses, and
// without the listeners' keys).
func (c *Client) CreateLoadBalancer(ctx context.Context, lb *api.LoadBalancer, opts CreateOptions) (existed bool, err error) {
	lb.Kind = api.LoadBalancerKind.Name
	var h http.Header
	if opts.IdempotencyKey != "" {
		h = http.Header{"Idempotency-Key": {opts.IdempotencyKey}}
	}
	var out api.LoadBalancer
	status, err := c.do(ctx, http.MethodPost, Path(api.LoadBalancerKind, lb.Metadata.Project, ""), nil, h, lb, &out)
	if err != nil {
		return false, err
	}
	*lb = out
	return status == http.StatusOK, nil
}

// UpdateLoadBalancer reads a load balancer, lets change modify it and
// writes it back at the version read, again from a fresh read while the
// write conflicts with another. An https listener left without its key
// keeps the stored one (the server never returns keys). It returns the
// load balancer as stored.
func (c *Client) UpdateLoadBalancer(ctx context.Context, project, name string, change func(*api.LoadBalancer) error) (*api.LoadBalancer, error) {
	for range maxConflictRetries {
		lb, err := c.GetLoadBalancer(ctx, project, name)
		if err != nil {
			return nil, err
		}
		if err := change(lb); err != nil {
			return nil, err
		}
		err = c.Update(ctx, lb)
		if e := asAPIError(err); e != nil && e.Code == api.CodeConflict {
			continue
		}
		if err != nil {
			return nil, err
		}
		return lb, nil
	}
	return nil, api.Conflict("load balancer %s/%s changes too fast", project, name)
}

// DeleteLoadBalancer deletes a load balancer, releasing its addresses.
func (c *Client) DeleteLoadBalancer(ctx context.Context, project, name string) error {
	return c.Delete(ctx, api.LoadBalancerKind, project, name)
}

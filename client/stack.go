package client

import (
	"context"
	"net/http"

	"github.com/ouroboros-cloud/ouro/api"
)

// GetStack reads a stack.
func (c *Client) GetStack(ctx context.Context, project, name string) (*api.Stack, error) {
	var s api.Stack
	if err := c.Get(ctx, api.StackKind, project, name, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// ListStacks returns every stack of project ("" for all the caller may
// see).
func (c *Client) ListStacks(ctx context.Context, project string) ([]api.Stack, error) {
	items, _, err := ListAll[api.Stack](ctx, c, api.StackKind, project, ListOptions{})
	return items, err
}

// CreateStack creates s in its metadata.project and replaces it with the
// stack as the server answers.
func (c *Client) CreateStack(ctx context.Context, s *api.Stack, opts CreateOptions) (existed bool, err error) {
	s.Kind = api.StackKind.Name
	var h http.Header
	if opts.IdempotencyKey != "" {
		h = http.Header{"Idempotency-Key": {opts.IdempotencyKey}}
	}
	var out api.Stack
	status, err := c.do(ctx, http.MethodPost, Path(api.StackKind, s.Metadata.Project, ""), nil, h, s, &out)
	if err != nil {
		return false, err
	}
	*s = out
	return status == http.StatusOK, nil
}

// UpdateStack writes s at its metadata.resourceVersion (a conflict is
// returned, not retried: the caller decides from the stack read whether
// the new spec still applies) and replaces it with the stack as stored.
func (c *Client) UpdateStack(ctx context.Context, s *api.Stack) error {
	s.Kind = api.StackKind.Name
	return c.Update(ctx, s)
}

// DeleteStack deletes a stack; the server goes on deleting what it owns.
func (c *Client) DeleteStack(ctx context.Context, project, name string) error {
	return c.Delete(ctx, api.StackKind, project, name)
}

// WatchStacks streams the events of project's stacks to fn (see Watch).
func (c *Client) WatchStacks(ctx context.Context, project string, opts WatchOptions, fn func(api.WatchEvent[api.Stack]) error) error {
	return Watch(ctx, c, api.StackKind, project, opts, fn)
}

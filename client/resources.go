package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/ttyframe"
)

// CreateOptions tune Create.
type CreateOptions struct {
	// IdempotencyKey is sent as the Idempotency-Key header; a retried
	// create with the same key never makes a second object.
	IdempotencyKey string
}

// Get reads one object into out.
func (c *Client) Get(ctx context.Context, kind *api.Kind, project, name string, out api.Object) error {
	_, err := c.Do(ctx, http.MethodGet, Path(kind, project, name), nil, nil, out)
	return err
}

// Create creates obj (in its metadata.project for namespaced kinds) and
// decodes the stored object back into it. existed is true when the server
// answered a retried idempotent create with the object made before.
func (c *Client) Create(ctx context.Context, obj api.Object, opts CreateOptions) (existed bool, err error) {
	m := obj.Meta()
	var h http.Header
	if opts.IdempotencyKey != "" {
		h = http.Header{"Idempotency-Key": {opts.IdempotencyKey}}
	}
	status, err := c.do(ctx, http.MethodPost, Path(obj.GetKind(), m.Project, ""), nil, h, obj, obj)
	return status == http.StatusOK, err
}

// Update replaces obj's spec and labels; obj must carry the
// resourceVersion it was read at.
func (c *Client) Update(ctx context.Context, obj api.Object) error {
	m := obj.Meta()
	_, err := c.Do(ctx, http.MethodPut, Path(obj.GetKind(), m.Project, m.Name), nil, obj, obj)
	return err
}

// UpdateStatus replaces obj's status; obj must carry its resourceVersion.
func (c *Client) UpdateStatus(ctx context.Context, obj api.Object) error {
	m := obj.Meta()
	_, err := c.Do(ctx, http.MethodPut, Path(obj.GetKind(), m.Project, m.Name)+"/status", nil, obj, obj)
	return err
}

// Delete deletes an object. For instances placed on a host the server
// answers at once and the instance goes through Terminating.
func (c *Client) Delete(ctx context.Context, kind *api.Kind, project, name string) error {
	_, err := c.Do(ctx, http.MethodDelete, Path(kind, project, name), nil, nil, nil)
	return err
}

// ListOptions select and page a list.
type ListOptions struct {
	LabelSelector string
	Limit         int
	Continue      string
	// Host restricts instances to those placed on a host.
	Host string
	// View asks for each object in a smaller form that holds only some
	// fields (api.ViewTable, api.ViewMap; see api.View), for a kind that
	// has it. Servers without views answer whole objects, which decode
	// into the same type.
	View string
}

func (o ListOptions) query() url.Values {
	q := url.Values{}
	if o.LabelSelector != "" {
		q.Set("labelSelector", o.LabelSelector)
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Continue != "" {
		q.Set("continue", o.Continue)
	}
	if o.Host != "" {
		q.Set("host", o.Host)
	}
	if o.View != "" {
		q.Set("view", o.View)
	}
	return q
}

// List returns one page of objects of a kind (project "" for all projects
// of a namespaced kind). T is the object type, e.g. api.Instance.
func List[T any](ctx context.Context, c *Client, kind *api.Kind, project string, opts ListOptions) ([]T, api.ListMeta, error) {
	var l api.List[T]
	_, err := c.Do(ctx, http.MethodGet, Path(kind, project, ""), opts.query(), nil, &l)
	return l.Items, l.Metadata, err
}

// ListAll follows continue tokens and returns every object.
func ListAll[T any](ctx context.Context, c *Client, kind *api.Kind, project string, opts ListOptions) ([]T, api.ListMeta, error) {
	var all []T
	for {
		items, meta, err := List[T](ctx, c, kind, project, opts)
		if err != nil {
			return nil, meta, err
		}
		if all == nil && meta.Continue == "" && len(items) > 0 {
			return items, meta, nil // one page: no copy
		}
		all = append(all, items...)
		if meta.Continue == "" {
			return all, meta, nil
		}
		opts.Continue = meta.Continue
	}
}

// WatchOptions select where a watch starts.
type WatchOptions struct {
	ListOptions
	// ResourceVersion to resume after; empty starts with ADDED events for
	// every existing object.
	ResourceVersion string
}

// Watch streams events of a kind to fn until ctx ends, the server ends the
// stream (nil is returned; call again with the last resourceVersion), fn
// returns an error (returned), or the server sends an ERROR event (its
// *api.Error is returned; code Gone means list again). BOOKMARK events are
// passed to fn too.
func Watch[T any](ctx context.Context, c *Client, kind *api.Kind, project string, opts WatchOptions, fn func(api.WatchEvent[T]) error) error {
	q := opts.query()
	q.Set("watch", "true")
	if opts.ResourceVersion != "" {
		q.Set("resourceVersion", opts.ResourceVersion)
	}
	resp, err := c.send(ctx, request{method: http.MethodGet, path: Path(kind, project, ""), query: q, stream: true})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		var head struct {
			Type   api.EventType   `json:"type"`
			Object json.RawMessage `json:"object"`
		}
		if err := json.Unmarshal(line, &head); err != nil {
			return fmt.Errorf("watch %s: decode event: %w", kind.Plural, err)
		}
		if head.Type == api.ErrorEvent {
			var e api.Error
			if err := json.Unmarshal(head.Object, &e); err != nil {
				return fmt.Errorf("watch %s: decode error event: %w", kind.Plural, err)
			}
			if e.Code == api.CodeGone {
				e.Status = http.StatusGone
			}
			return &e
		}
		var ev api.WatchEvent[T]
		ev.Type = head.Type
		if err := json.Unmarshal(head.Object, &ev.Object); err != nil {
			return fmt.Errorf("watch %s: decode object: %w", kind.Plural, err)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("watch %s: %w", kind.Plural, err)
	}
	return ctx.Err()
}

// Action posts an instance action (start, stop, reboot) and decodes the
// instance it answers with into out (may be nil).
func (c *Client) Action(ctx context.Context, project, name, action string, out *api.Instance) error {
	_, err := c.Do(ctx, http.MethodPost, Path(api.InstanceKind, project, name)+"/"+action, nil, nil, out)
	return err
}

// Logs opens an instance's output. With follow it stays open and streams
// new output until ctx ends. tail < 0 means all.
func (c *Client) Logs(ctx context.Context, project, name string, follow bool, tail int) (io.ReadCloser, error) {
	q := url.Values{}
	if follow {
		q.Set("follow", "true")
	}
	if tail >= 0 {
		q.Set("tail", strconv.Itoa(tail))
	}
	resp, err := c.send(ctx, request{method: http.MethodGet, path: Path(api.InstanceKind, project, name) + "/logs", query: q, stream: true, retries: 2})
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// Exec runs a command in a running instance.
func (c *Client) Exec(ctx context.Context, project, name string, req api.ExecRequest) (*api.ExecResponse, error) {
	var out api.ExecResponse
	_, err := c.Do(ctx, http.MethodPost, Path(api.InstanceKind, project, name)+"/exec", nil, req, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateToken issues a user token; the answer carries status.secret once.
func (c *Client) CreateToken(ctx context.Context, req api.TokenRequest) (*api.Token, error) {
	var t api.Token
	_, err := c.Do(ctx, http.MethodPost, "/v1/tokens", nil, req, &t)
	return &t, err
}

// CreateJoinToken issues a host join token; status.secret is shown once.
func (c *Client) CreateJoinToken(ctx context.Context, req api.JoinTokenRequest) (*api.JoinToken, error) {
	var t api.JoinToken
	_, err := c.Do(ctx, http.MethodPost, "/v1/jointokens", nil, req, &t)
	return &t, err
}

// Join registers a host with a join token and returns its credentials.
func (c *Client) Join(ctx context.Context, joinToken string, req api.JoinRequest) (*api.JoinResponse, error) {
	var out api.JoinResponse
	h := http.Header{"Authorization": {"Bearer " + joinToken}}
	_, err := c.do(ctx, http.MethodPost, "/v1/hosts/join", nil, h, req, &out)
	return &out, err
}

// Heartbeat renews a host's presence for ttl.
func (c *Client) Heartbeat(ctx context.Context, host string, ttl time.Duration) error {
	_, err := c.Do(ctx, http.MethodPost, "/v1/hosts/"+url.PathEscape(host)+"/heartbeat", nil, api.HeartbeatRequest{TTL: ttl.String()}, nil)
	return err
}

// Whoami tells who the client's token is.
func (c *Client) Whoami(ctx context.Context) (*api.Whoami, error) {
	var w api.Whoami
	_, err := c.Do(ctx, http.MethodGet, "/v1/whoami", nil, nil, &w)
	return &w, err
}

// Console connects to the interactive console of a running instance
// (a virtual machine's serial port): reads return its output, writes go
// to its input, Close detaches. Instances whose driver has no console
// (containers) answer 400.
func (c *Client) Console(ctx context.Context, project, name string) (io.ReadWriteCloser, error) {
	return c.switchTo(ctx, project, name, "console", nil, api.ConsoleProtocol)
}

// ExecTTY runs argv in a running instance on a terminal of rows and cols
// (POST .../exec upgraded to api.ExecTTYProtocol). The stream carries
// frames of package ttyframe: write Data and Resize frames, read Data
// frames, then an Exit frame with the command's exit code (or an Error
// frame). Closing the stream hangs the terminal up. Instances whose
// driver has no terminals (virtual machines) answer 400.
func (c *Client) ExecTTY(ctx context.Context, project, name string, argv []string, rows, cols uint16) (io.ReadWriteCloser, error) {
	q := url.Values{"command": argv}
	ttyframe.SetSize(q, rows, cols)
	return c.switchTo(ctx, project, name, "exec", q, api.ExecTTYProtocol)
}

// switchTo posts action of an instance with query q, asking to upgrade
// to protocol, and returns the switched connection.
func (c *Client) switchTo(ctx context.Context, project, name, action string, q url.Values, protocol string) (io.ReadWriteCloser, error) {
	u := *c.base
	u.Path = c.base.Path + Path(api.InstanceKind, project, name) + "/" + action
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", action, err)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", protocol)
	req.Header.Set("User-Agent", c.ua)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.upgrade.Do(req)
	if err != nil {
		return nil, fmt.Errorf("POST %s: %w", u.Path, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer resp.Body.Close()
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			return nil, fmt.Errorf("POST %s: the server answered %s instead of switching to %s", u.Path, resp.Status, protocol)
		}
		return nil, decodeError(resp)
	}
	rwc, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		resp.Body.Close()
		return nil, fmt.Errorf("POST %s: the switched connection is not writable", u.Path)
	}
	return rwc, nil
}

// SetPassword sets user's console password (PUT /v1/users/{name}/password):
// users set their own, cluster admins anyone's.
func (c *Client) SetPassword(ctx context.Context, user, password string) error {
	_, err := c.Do(ctx, http.MethodPut, "/v1/users/"+url.PathEscape(user)+"/password", nil,
		api.PasswordRequest{Password: password}, nil)
	return err
}

// DrainHost cordons a host and deletes the instance group members on it,
// which their groups replace elsewhere (POST /v1/hosts/{name}/drain).
func (c *Client) DrainHost(ctx context.Context, name string) (*api.DrainResponse, error) {
	var out api.DrainResponse
	if _, err := c.Do(ctx, http.MethodPost, "/v1/hosts/"+url.PathEscape(name)+"/drain", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Crash has the instance's agent kill its main process with SIGKILL, as a
// crash would (cluster admins; a teaching action).
func (c *Client) Crash(ctx context.Context, project, name string) error {
	_, err := c.Do(ctx, http.MethodPost, Path(api.InstanceKind, project, name)+"/crash", nil, nil, nil)
	return err
}

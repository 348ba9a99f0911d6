// Package command holds what every ouro command shares: the global flags
// and the API client they select (Options), the errors commands return
// for bad input and how errors are shown, argument checks, shell
// completion of object names, and the generic list, get and delete
// commands of a kind.
package command

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ouroboros-cloud/ouro/cli/output"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/clientconfig"
)

// Environment variables the CLI reads.
const (
	EnvToken  = "OURO_TOKEN"
	EnvServer = "OURO_SERVER"
)

// DefaultProject is used when neither --project nor the context names one.
const DefaultProject = "default"

// errNoConfig is returned when there is no way to reach a cloud.
var errNoConfig = errors.New("no cloud configured: run `ouro up` or set OURO_CONFIG")

// Options are the global flags and what they resolve to. Commands get the
// API client from Client and the project they act in from Project.
type Options struct {
	// UserAgent is what the client calls itself in requests.
	UserAgent string
	// Output is the output format: table, json or yaml.
	Output string

	contextName string
	project     string
	token       string
	server      string

	// resolved lazily by Client()
	c       *client.Client
	current *clientconfig.Context
}

// AddFlags registers the global flags on root's persistent flags, with
// their completions.
func (o *Options) AddFlags(root *cobra.Command) {
	pf := root.PersistentFlags()
	pf.StringVar(&o.contextName, "context", "", "context of the client configuration to use (default: the current context)")
	pf.StringVar(&o.project, "project", "", "project to act in (default: the context's project, else \"default\")")
	pf.StringVar(&o.token, "token", "", "bearer token to act as another user, with the context's server and CA (env "+EnvToken+")")
	pf.StringVar(&o.server, "server", "", "API server URL, overriding the context's (env "+EnvServer+")")
	pf.StringVarP(&o.Output, "output", "o", "table", "output format: table, json or yaml")
}

// Validate checks the global flags before any request is sent.
func (o *Options) Validate() error {
	switch o.Output {
	case "table", "json", "yaml":
	default:
		return FlagError("output", "unknown output format %q: use table, json or yaml", o.Output)
	}
	return nil
}

// Render writes v in the selected output format; fill writes the table.
func (o *Options) Render(w io.Writer, v any, fill func(t *output.Table)) error {
	return output.Render(w, o.Output, v, fill)
}

// Client returns the API client for the selected context, building it on
// first use.
func (o *Options) Client() (*client.Client, error) {
	if o.c != nil {
		return o.c, nil
	}
	path, cfg, err := LoadConfig()
	if err != nil {
		return nil, err
	}
	var cur *clientconfig.Context
	switch {
	case o.contextName != "":
		if cur = cfg.Find(o.contextName); cur == nil {
			return nil, FlagError("context", "context %q is not in %s (known: %s)", o.contextName, path, KnownList(cfg.Names()))
		}
	case cfg.CurrentContext != "":
		if cur, err = cfg.Current(); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	case len(cfg.Contexts) == 1:
		cur = &cfg.Contexts[0]
	}
	cc := client.Config{UserAgent: o.UserAgent}
	if cur != nil {
		cc.Server, cc.Token, cc.CACert = cur.Server, cur.Token, []byte(cur.CACert)
	}
	if s := firstNonEmpty(o.server, os.Getenv(EnvServer)); s != "" {
		cc.Server = s
	}
	if t := firstNonEmpty(o.token, os.Getenv(EnvToken)); t != "" {
		cc.Token = t
	}
	if cc.Server == "" {
		if len(cfg.Contexts) > 1 {
			return nil, fmt.Errorf("no current context in %s: pick one with --context (known: %s)", path, KnownList(cfg.Names()))
		}
		return nil, errNoConfig
	}
	c, err := client.New(cc)
	if err != nil {
		return nil, err
	}
	o.c, o.current = c, cur
	return c, nil
}

// Project returns the project commands act in.
func (o *Options) Project() string {
	if o.project != "" {
		return o.project
	}
	if o.current == nil {
		// Resolve the context for its project; errors surface in Client().
		o.Client()
	}
	if o.current != nil && o.current.Project != "" {
		return o.current.Project
	}
	return DefaultProject
}

// LoadConfig reads the client configuration from its default path.
func LoadConfig() (string, *clientconfig.Config, error) {
	path, err := clientconfig.DefaultPath()
	if err != nil {
		return "", nil, err
	}
	cfg, err := clientconfig.Load(path)
	if err != nil {
		return "", nil, err
	}
	return path, cfg, nil
}

// KnownList renders names for an error that lists what is known: "a, b",
// or "none".
func KnownList(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// Inherit returns the global flags and environment that make another ouro
// process (one that ssh starts as its ProxyCommand, say) act as this one
// does: the same context and project, and the token and server given on
// the command line, passed in the environment so they do not show in the
// process list.
func (o *Options) Inherit() (args, env []string) {
	if o.contextName != "" {
		args = append(args, "--context", o.contextName)
	}
	args = append(args, "--project", o.Project())
	if o.token != "" {
		env = append(env, EnvToken+"="+o.token)
	}
	if o.server != "" {
		env = append(env, EnvServer+"="+o.server)
	}
	return args, env
}

package loadbalancer

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/cli/command"
)

// DefaultPool names the pool `ouro lb create` makes.
const DefaultPool = "default"

// maxPEMBytes bounds a certificate or key file.
const maxPEMBytes = 64 << 10

// poolFlags are the flags that describe a pool: its members, their port,
// the health monitor and the algorithm.
type poolFlags struct {
	group     string
	instances []string
	port      int
	health    string
	algorithm string
}

func (f *poolFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.group, "group", "", "take the members from this instance group (they follow it as it scales, rolls out and heals)")
	fl.StringArrayVar(&f.instances, "instance", nil, "a member instance, INSTANCE[:WEIGHT] (repeat for more)")
	fl.IntVar(&f.port, "port", 0, "the members' port (required)")
	fl.StringVar(&f.health, "health", "", "health monitor: tcp (the default) or http:/PATH")
	fl.StringVar(&f.algorithm, "algorithm", "", "round-robin (the default), least-connections or source-hash")
}

// pool returns the pool the flags ask for, named name.
func (f *poolFlags) pool(name string) (api.Pool, error) {
	p := api.Pool{Name: name, Group: f.group, Port: f.port, Algorithm: f.algorithm}
	switch {
	case f.group == "" && len(f.instances) == 0:
		return api.Pool{}, command.FlagError("group", "required: give --group GROUP or --instance INSTANCE (repeatable)")
	case f.group != "" && len(f.instances) > 0:
		return api.Pool{}, command.FlagError("instance", "give either --group or --instance, not both")
	case f.port < 1 || f.port > 65535:
		if f.port == 0 {
			return api.Pool{}, command.FlagError("port", "required: give the port the members serve on, e.g. --port 8080")
		}
		return api.Pool{}, command.FlagError("port", "%d is out of range: use 1 to 65535", f.port)
	}
	switch f.algorithm {
	case "", api.AlgorithmRoundRobin, api.AlgorithmLeastConnections, api.AlgorithmSourceHash:
	default:
		return api.Pool{}, command.FlagError("algorithm", "%q: use round-robin, least-connections or source-hash", f.algorithm)
	}
	for _, s := range f.instances {
		pi, err := parseInstance(s)
		if err != nil {
			return api.Pool{}, err
		}
		p.Instances = append(p.Instances, pi)
	}
	hm, err := parseMonitor(f.health)
	if err != nil {
		return api.Pool{}, err
	}
	p.HealthMonitor = hm
	return p, nil
}

// parseInstance parses --instance INSTANCE[:WEIGHT].
func parseInstance(s string) (api.PoolInstance, error) {
	name, w, hasWeight := strings.Cut(s, ":")
	pi := api.PoolInstance{Instance: name}
	if e := api.ValidateName("instance", name); e != nil {
		return pi, command.FlagError("instance", "%q: instance name is not valid (%s)", s, e.Hint)
	}
	if hasWeight {
		n, err := strconv.Atoi(w)
		if err != nil || n < 1 || n > 256 {
			return pi, command.FlagError("instance", "%q: weight %q is not a number from 1 to 256", s, w)
		}
		pi.Weight = n
	}
	return pi, nil
}

// monitorForms lists what --health accepts.
const monitorForms = "use tcp or http:/PATH, e.g. http:/healthz"

// parseMonitor parses --health: "" or tcp (a connection succeeds), or
// http:/PATH (GET PATH answers 200-399).
func parseMonitor(s string) (api.HealthMonitor, error) {
	switch {
	case s == "" || s == api.MonitorTCP:
		return api.HealthMonitor{}, nil
	case s == api.MonitorHTTP:
		return api.HealthMonitor{Type: api.MonitorHTTP, Path: "/"}, nil
	case strings.HasPrefix(s, "http:/"):
		path := strings.TrimPrefix(s, "http:")
		if strings.ContainsAny(path, " \t\"'\\") {
			return api.HealthMonitor{}, command.FlagError("health", "%q: the path must not contain spaces or quotes", s)
		}
		return api.HealthMonitor{Type: api.MonitorHTTP, Path: path}, nil
	}
	return api.HealthMonitor{}, command.FlagError("health", "%q is not a health monitor: %s", s, monitorForms)
}

// parseListen parses --listen PORT[/tcp|http].
func parseListen(s string) (api.Listener, error) {
	port, proto, hasProto := strings.Cut(s, "/")
	l := api.Listener{Protocol: api.ListenerTCP, DefaultPool: DefaultPool}
	if hasProto {
		switch proto {
		case api.ListenerTCP, api.ListenerHTTP:
			l.Protocol = proto
		case api.ListenerHTTPS:
			return l, command.FlagError("listen", "%q: add https listeners with `ouro lb listener add --protocol https --cert FILE --key FILE`", s)
		default:
			return l, command.FlagError("listen", "%q: protocol %q is not tcp or http", s, proto)
		}
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return l, command.FlagError("listen", "%q: port %q is not a number from 1 to 65535", s, port)
	}
	l.Port = n
	return l, nil
}

// parseRule parses --rule host=H,path=/p,pool=P (host or path, or both).
func parseRule(s string) (api.ListenerRule, error) {
	var r api.ListenerRule
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || v == "" {
			return r, command.FlagError("rule", "%q: %q is not KEY=VALUE (keys host, path and pool)", s, kv)
		}
		switch k {
		case "host":
			r.Host = v
		case "path":
			r.PathPrefix = v
		case "pool":
			r.Pool = v
		default:
			return r, command.FlagError("rule", "%q: unknown key %q (use host, path and pool)", s, k)
		}
	}
	switch {
	case r.Pool == "":
		return r, command.FlagError("rule", "%q: say where it goes with pool=POOL", s)
	case r.Host == "" && r.PathPrefix == "":
		return r, command.FlagError("rule", "%q: match a host=HOST, a path=/PREFIX or both", s)
	case r.PathPrefix != "" && !strings.HasPrefix(r.PathPrefix, "/"):
		return r, command.FlagError("rule", "%q: path %q must start with /", s, r.PathPrefix)
	}
	return r, nil
}

// drainSeconds turns --drain-timeout into whole seconds (0: the server's
// default).
func drainSeconds(d time.Duration) (int, error) {
	switch {
	case d == 0:
		return 0, nil
	case d < time.Second || d > time.Hour || d%time.Second != 0:
		return 0, command.FlagError("drain-timeout", "%s: use whole seconds from 1s to 1h, e.g. 30s", d)
	}
	return int(d / time.Second), nil
}

// listenerName is the name the server gives a listener left unnamed.
func listenerName(l api.Listener) string {
	if l.Name != "" {
		return l.Name
	}
	return fmt.Sprintf("%s-%d", l.Protocol, l.Port)
}

package admission

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/store"
)

// Bounds of listener rules, certificates and health monitors.
const (
	maxPEMBytes         = 64 << 10
	maxRuleBytes        = 253
	minMonitorInterval  = 100
	maxMonitorInterval  = 60000
	defaultMonitorMs    = 1000
	defaultRiseFall     = 2
	maxRiseFall         = 10
	defaultExpectStatus = "200-399"
)

var (
	ruleHostRE   = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$`)
	statusCodeRE = regexp.MustCompile(`^[1-5][0-9][0-9](-[1-5][0-9][0-9])?$`)
)

// validateListeners checks and defaults the listeners: a known protocol,
// a port no other listener uses, a unique name (default
// "<protocol>-<port>"), pools that are in pools (name → index), rules
// only on http and https, and a certificate and key that parse and match
// on https only.
func validateListeners(ls []api.Listener, pools map[string]int) error {
	if len(ls) > maxListeners {
		return api.Invalid("spec.listeners", fmt.Sprintf("use at most %d listeners", maxListeners), "%d listeners given", len(ls))
	}
	ports := map[int]string{}
	names := map[string]int{}
	for i := range ls {
		l := &ls[i]
		f := fmt.Sprintf("spec.listeners[%d]", i)
		if l.Protocol == "" {
			l.Protocol = api.ListenerTCP
		}
		switch l.Protocol {
		case api.ListenerTCP, api.ListenerHTTP, api.ListenerHTTPS:
		default:
			return api.Invalid(f+".protocol", "use tcp, http or https", "protocol %q is not valid", truncate(l.Protocol, 80))
		}
		if l.Port < 1 || l.Port > 65535 {
			return api.Invalid(f+".port", "use a port from 1 to 65535", "port %d is out of range", l.Port)
		}
		if l.Name == "" {
			l.Name = fmt.Sprintf("%s-%d", l.Protocol, l.Port)
		}
		if e := api.ValidateName(f+".name", l.Name); e != nil {
			return e
		}
		if other, ok := ports[l.Port]; ok {
			return api.Invalid(f+".port", "use a port no other listener of the load balancer uses", "%d is already used by listener %q", l.Port, other)
		}
		ports[l.Port] = l.Name
		if j, ok := names[l.Name]; ok {
			return api.Invalid(f+".name", "give every listener its own name", "listener %q is already spec.listeners[%d]", l.Name, j)
		}
		names[l.Name] = i
		if err := poolRef(f+".defaultPool", l.DefaultPool, pools); err != nil {
			return err
		}
		if l.Protocol == api.ListenerTCP && len(l.Rules) > 0 {
			return api.Invalid(f+".rules", "use protocol http or https to route by host or path", "a tcp listener takes no rules")
		}
		if err := validateRules(f+".rules", l.Rules, pools); err != nil {
			return err
		}
		if err := validateListenerTLS(f, l); err != nil {
			return err
		}
	}
	return nil
}

// poolRef checks that a listener or rule names a pool of the spec.
func poolRef(field, name string, pools map[string]int) error {
	if name == "" {
		return api.Invalid(field, "name one of spec.pools", "pool is required")
	}
	if _, ok := pools[name]; !ok {
		return api.Invalid(field, "name one of spec.pools, or add the pool first", "pool %q is not in spec.pools", truncate(name, 80))
	}
	return nil
}

// validateRules checks http routing rules: each matches a host, a path
// prefix or both, and sends to a pool of the spec.
func validateRules(field string, rules []api.ListenerRule, pools map[string]int) error {
	if len(rules) > maxRules {
		return api.Invalid(field, fmt.Sprintf("use at most %d rules", maxRules), "%d rules given", len(rules))
	}
	for i, r := range rules {
		f := fmt.Sprintf("%s[%d]", field, i)
		if r.Host == "" && r.PathPrefix == "" {
			return api.Invalid(f, "give a host, a pathPrefix or both", "a rule must match something")
		}
		if r.Host != "" && (len(r.Host) > maxRuleBytes || !ruleHostRE.MatchString(r.Host)) {
			return api.Invalid(f+".host", "use a host name such as www.example.com, without port", "host %q is not valid", truncate(r.Host, 80))
		}
		if r.PathPrefix != "" && (!strings.HasPrefix(r.PathPrefix, "/") || len(r.PathPrefix) > maxProbePathBytes || strings.ContainsAny(r.PathPrefix, " \t\r\n\x00\"'\\#")) {
			return api.Invalid(f+".pathPrefix", "use an absolute path such as /api, without spaces or quotes", "path prefix %q is not valid", truncate(r.PathPrefix, 80))
		}
		if err := poolRef(f+".pool", r.Pool, pools); err != nil {
			return err
		}
	}
	return nil
}

// validateListenerTLS checks that an https listener has a certificate
// chain and a private key that parse and belong together, and that other
// listeners have neither.
func validateListenerTLS(f string, l *api.Listener) error {
	if l.Protocol != api.ListenerHTTPS {
		if l.Certificate != "" {
			return api.Invalid(f+".certificate", "use protocol https to terminate TLS", "a %s listener takes no certificate", l.Protocol)
		}
		if l.Key != "" {
			return api.Invalid(f+".key", "use protocol https to terminate TLS", "a %s listener takes no key", l.Protocol)
		}
		return nil
	}
	const certHint = "give the PEM certificate chain, leaf first"
	if l.Certificate == "" {
		return api.Invalid(f+".certificate", certHint, "an https listener needs a certificate")
	}
	if len(l.Certificate) > maxPEMBytes {
		return api.Invalid(f+".certificate", certHint, "certificate is %d bytes, at most %d are allowed", len(l.Certificate), maxPEMBytes)
	}
	rest, n := []byte(l.Certificate), 0
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return api.Invalid(f+".certificate", certHint+"; the key goes in key", "PEM block %q is not a certificate", truncate(b.Type, 40))
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			return api.Invalid(f+".certificate", certHint, "certificate %d does not parse: %v", n+1, err)
		}
		n++
	}
	if n == 0 {
		return api.Invalid(f+".certificate", certHint, "no PEM certificate found")
	}
	const keyHint = "give the certificate's PEM private key (PKCS#1, PKCS#8 or EC)"
	switch {
	case l.Key == "":
		return api.Invalid(f+".key", keyHint, "an https listener needs a key")
	case len(l.Key) > maxPEMBytes:
		return api.Invalid(f+".key", keyHint, "key is %d bytes, at most %d are allowed", len(l.Key), maxPEMBytes)
	}
	if b, _ := pem.Decode([]byte(l.Key)); b == nil || !strings.HasSuffix(b.Type, "PRIVATE KEY") {
		return api.Invalid(f+".key", keyHint, "no PEM private key found")
	}
	if _, err := tls.X509KeyPair([]byte(l.Certificate), []byte(l.Key)); err != nil {
		return api.Invalid(f+".key", keyHint, "key does not go with the certificate: %v", err)
	}
	return nil
}

// validatePool checks and defaults a pool's algorithm, port, weights and
// health monitor; its members are checked by checkPoolMembers.
func validatePool(f string, p *api.Pool) error {
	if p.Algorithm == "" {
		p.Algorithm = api.AlgorithmRoundRobin
	}
	switch p.Algorithm {
	case api.AlgorithmRoundRobin, api.AlgorithmLeastConnections, api.AlgorithmSourceHash:
	default:
		return api.Invalid(f+".algorithm", "use round-robin, least-connections or source-hash", "algorithm %q is not valid", truncate(p.Algorithm, 80))
	}
	if p.Port < 1 || p.Port > 65535 {
		return api.Invalid(f+".port", "use the members' port, 1 to 65535", "port %d is out of range", p.Port)
	}
	if p.Weight == 0 {
		p.Weight = 1
	}
	if p.Weight < 1 || p.Weight > maxWeight {
		return api.Invalid(f+".weight", fmt.Sprintf("use 1 to %d", maxWeight), "weight %d is out of range", p.Weight)
	}
	return validateHealthMonitor(f+".healthMonitor", &p.HealthMonitor)
}

// validateHealthMonitor checks and defaults a pool's health monitor.
func validateHealthMonitor(f string, m *api.HealthMonitor) error {
	if m.Type == "" {
		m.Type = api.MonitorTCP
	}
	switch m.Type {
	case api.MonitorTCP:
		if m.Path != "" {
			return api.Invalid(f+".path", "leave it out, or use type http", "a tcp monitor takes no path")
		}
		if m.ExpectedStatus != "" {
			return api.Invalid(f+".expectedStatus", "leave it out, or use type http", "a tcp monitor takes no expected status")
		}
	case api.MonitorHTTP:
		if m.Path == "" {
			m.Path = "/"
		}
		if !strings.HasPrefix(m.Path, "/") || len(m.Path) > maxProbePathBytes || strings.ContainsAny(m.Path, " \t\r\n\x00\"'\\") {
			return api.Invalid(f+".path", "use an absolute path such as /healthz, without spaces or quotes", "path %q is not valid", truncate(m.Path, 80))
		}
		if m.ExpectedStatus == "" {
			m.ExpectedStatus = defaultExpectStatus
		}
		if !validStatusRange(m.ExpectedStatus) {
			return api.Invalid(f+".expectedStatus", "use a status code such as 200 or a range such as 200-399", "%q is not a status or range", truncate(m.ExpectedStatus, 80))
		}
	default:
		return api.Invalid(f+".type", "use tcp or http", "monitor type %q is not valid", truncate(m.Type, 80))
	}
	if m.IntervalMillis == 0 {
		m.IntervalMillis = defaultMonitorMs
	}
	if m.IntervalMillis < minMonitorInterval || m.IntervalMillis > maxMonitorInterval {
		return api.Invalid(f+".intervalMillis", fmt.Sprintf("use %d to %d", minMonitorInterval, maxMonitorInterval), "%d is out of range", m.IntervalMillis)
	}
	if m.TimeoutMillis == 0 {
		m.TimeoutMillis = min(defaultMonitorMs, m.IntervalMillis)
	}
	if m.TimeoutMillis < 1 || m.TimeoutMillis > m.IntervalMillis {
		return api.Invalid(f+".timeoutMillis", fmt.Sprintf("use 1 to the interval (%d)", m.IntervalMillis), "%d is out of range", m.TimeoutMillis)
	}
	for _, rf := range []struct {
		name string
		v    *int
	}{{"rise", &m.Rise}, {"fall", &m.Fall}} {
		if *rf.v == 0 {
			*rf.v = defaultRiseFall
		}
		if *rf.v < 1 || *rf.v > maxRiseFall {
			return api.Invalid(f+"."+rf.name, fmt.Sprintf("use 1 to %d", maxRiseFall), "%d is out of range", *rf.v)
		}
	}
	return nil
}

// validStatusRange reports whether s is "NNN" or "NNN-NNN" (low first).
func validStatusRange(s string) bool {
	if !statusCodeRE.MatchString(s) {
		return false
	}
	lo, hi, ok := strings.Cut(s, "-")
	if !ok {
		return true
	}
	l, _ := strconv.Atoi(lo)
	h, _ := strconv.Atoi(hi)
	return l <= h
}

// checkPoolMembers checks that a pool names exactly one of a group and a
// list of instances, and that they exist in project and are attached to
// the load balancer's network n.
func (a *Admitter) checkPoolMembers(ctx context.Context, f, project string, n *api.Network, p *api.Pool) error {
	switch {
	case p.Group == "" && len(p.Instances) == 0:
		return api.Invalid(f+".group", "name an instance group, or list instances", "a pool needs members")
	case p.Group != "" && len(p.Instances) > 0:
		return api.Invalid(f+".instances", "name either a group or instances, not both", "a pool with a group takes no instances")
	}
	attached := func(nets []api.NetworkAttachment) bool {
		return slices.ContainsFunc(nets, func(at api.NetworkAttachment) bool { return at.Network == n.Metadata.Name })
	}
	if p.Group != "" {
		if e := api.ValidateName(f+".group", p.Group); e != nil {
			return e
		}
		var g api.InstanceGroup
		err := a.st.Get(ctx, api.InstanceGroupKind, project, p.Group, &g)
		if errors.Is(err, store.ErrNotFound) {
			return api.Invalid(f+".group", "name an instance group of this project", "instance group %q does not exist", p.Group)
		}
		if err != nil {
			return fmt.Errorf("get instance group %s: %w", p.Group, err)
		}
		if !attached(g.Spec.Template.Networks) {
			return api.Invalid(f+".group", "attach the group's template to the load balancer's network", "instance group %q has no member on network %q", p.Group, n.Metadata.Name)
		}
		return nil
	}
	if len(p.Instances) > maxPoolInstances {
		return api.Invalid(f+".instances", fmt.Sprintf("use at most %d, or a group", maxPoolInstances), "%d instances given", len(p.Instances))
	}
	seen := map[string]int{}
	for j, pi := range p.Instances {
		fi := fmt.Sprintf("%s.instances[%d]", f, j)
		if e := api.ValidateName(fi+".instance", pi.Instance); e != nil {
			return e
		}
		if k, ok := seen[pi.Instance]; ok {
			return api.Invalid(fi+".instance", "list every instance once", "instance %q is already %s.instances[%d]", pi.Instance, f, k)
		}
		seen[pi.Instance] = j
		if pi.Weight < 0 || pi.Weight > maxWeight {
			return api.Invalid(fi+".weight", fmt.Sprintf("use 1 to %d, or leave it out for the pool's", maxWeight), "weight %d is out of range", pi.Weight)
		}
		var in api.Instance
		err := a.st.Get(ctx, api.InstanceKind, project, pi.Instance, &in)
		if errors.Is(err, store.ErrNotFound) {
			return api.Invalid(fi+".instance", "name an instance of this project", "instance %q does not exist", pi.Instance)
		}
		if err != nil {
			return fmt.Errorf("get instance %s: %w", pi.Instance, err)
		}
		if !attached(in.Spec.Networks) {
			return api.Invalid(fi+".instance", "name an instance attached to the load balancer's network", "instance %q is not on network %q", pi.Instance, n.Metadata.Name)
		}
	}
	return nil
}

// Package membership manages the servers of the control plane: each is an
// etcd member (stacked etcd: every server runs one and talks to its own)
// beside an API server. It lists them, removes one, issues server join
// tokens and admits a new server with one, and keeps this server's
// presence while it is ready.
//
//	ouro server join-token ──▶ IssueJoinToken: /ouro/serverjoin/<name> (hash, leased)
//	ouro server --join T   ──▶ Join: consume the token, MemberAdd(peer URL),
//	                            answer the CA (cert + key) and the initial cluster
//	ouro server list       ──▶ List: members + /ouro/servers/<name> + elections
//	ouro server remove N   ──▶ Remove: MemberRemove, unless it breaks quorum
package membership

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/election"
	"github.com/ouroboros-cloud/ouro/pki"
)

// Keys in etcd.
const (
	presencePrefix = "/ouro/servers/"
	joinPrefix     = "/ouro/serverjoin/"
)

// PresenceTTL is how long a server's presence outlives its last renewal.
const PresenceTTL = 5 * time.Second

// announceInterval is how often the presence is renewed and learners are
// looked for.
const announceInterval = 500 * time.Millisecond

// Config configures Servers.
type Config struct {
	// Client is this server's etcd client (of its own member).
	Client *clientv3.Client
	// CA is the cluster CA, handed to joining servers.
	CA *pki.CA
	// Name is this server's name (and its etcd member's).
	Name string
	// APIURL is this server's own API URL.
	APIURL string
	// APIVIP is the servers' API VIP (ADDR/PREFIX) and VIPURL the API URL
	// on it; empty without one.
	APIVIP, VIPURL string
	// Stacked says the server runs its own etcd member: only then can
	// servers join with a token.
	Stacked bool
	// VIPElection and ControllerElection name the elections whose leaders
	// List reports.
	VIPElection, ControllerElection string
	Logger                          *slog.Logger
}

// Servers manages the control plane's servers.
type Servers struct {
	cfg Config
	log *slog.Logger
	now func() time.Time
}

// New returns Servers; nothing runs until Announce.
func New(cfg Config) *Servers {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Servers{cfg: cfg, log: cfg.Logger, now: time.Now}
}

// Info returns what clients need to know of the cluster.
func (s *Servers) Info(context.Context) api.ClusterInfo {
	if s.cfg.VIPURL != "" {
		return api.ClusterInfo{APIVIP: s.cfg.APIVIP, APIURL: s.cfg.VIPURL}
	}
	return api.ClusterInfo{APIURL: s.cfg.APIURL}
}

// presence is the value of /ouro/servers/<name>.
type presence struct {
	APIURL string `json:"apiURL"`
}

// List returns the servers: every etcd member, with what each announces.
func (s *Servers) List(ctx context.Context) ([]api.Server, error) {
	members, err := s.cfg.Client.MemberList(ctx)
	if err != nil {
		return nil, unavailable("list etcd members", err)
	}
	announced, err := Present(ctx, s.cfg.Client)
	if err != nil {
		return nil, unavailable("list servers", err)
	}
	vip := s.leader(ctx, s.cfg.VIPElection)
	ctrl := s.leader(ctx, s.cfg.ControllerElection)
	var out []api.Server
	for _, m := range members.Members {
		apiURL, ok := announced[m.Name]
		out = append(out, api.Server{
			Name: m.Name, MemberID: strconv.FormatUint(m.ID, 16), PeerURLs: m.PeerURLs,
			APIURL: apiURL, Ready: ok && m.Name != "" && !m.IsLearner, Started: m.Name != "", Learner: m.IsLearner,
			HoldsAPIVIP: m.Name != "" && vip == m.Name, ControllerLeader: m.Name != "" && ctrl == m.Name,
		})
	}
	slices.SortFunc(out, func(a, b api.Server) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out, nil
}

// Present returns the API URL of every server whose presence is
// announced, that is every ready server, by name.
func Present(ctx context.Context, cli *clientv3.Client) (map[string]string, error) {
	resp, err := cli.Get(ctx, presencePrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("read server presence: %w", err)
	}
	out := map[string]string{}
	for _, kv := range resp.Kvs {
		var p presence
		if json.Unmarshal(kv.Value, &p) == nil {
			out[string(kv.Key[len(presencePrefix):])] = p.APIURL
		}
	}
	return out, nil
}

func (s *Servers) leader(ctx context.Context, name string) string {
	if name == "" {
		return ""
	}
	l, _ := election.Leader(ctx, s.cfg.Client, name)
	return l
}

// Remove takes server name (or the member with that hex id) out of the
// etcd cluster. It refuses to remove
// the last member, the server answering (its member would stop under it),
// and a member whose removal leaves fewer ready members than the smaller
// cluster's quorum.
func (s *Servers) Remove(ctx context.Context, name string) error {
	servers, err := s.List(ctx)
	if err != nil {
		return err
	}
	// A member added by a join whose server never started has no name
	// yet: it goes by its member id.
	i := slices.IndexFunc(servers, func(sv api.Server) bool { return sv.Name == name || sv.MemberID == name })
	if i < 0 {
		return api.NotFound("Server", name)
	}
	if len(servers) == 1 {
		return refused("server %q is the cluster's last etcd member; removing it would destroy the cluster", name)
	}
	if name == s.cfg.Name {
		return &api.Error{Status: http.StatusConflict, Code: api.CodeConflict,
			Message: fmt.Sprintf("server %q is the one answering this request", name),
			Hint:    "stop that server first: another one then answers (through the VIP) and can remove it"}
	}
	readyAfter := 0
	for _, sv := range servers {
		if sv.Name != name && sv.Ready {
			readyAfter++
		}
	}
	if quorum := (len(servers)-1)/2 + 1; readyAfter < quorum {
		return refused("removing %q leaves %d ready of %d etcd members, below the quorum of %d; "+
			"bring the other servers back first", name, readyAfter, len(servers)-1, quorum)
	}
	id, err := strconv.ParseUint(servers[i].MemberID, 16, 64)
	if err != nil {
		return fmt.Errorf("member id %q: %w", servers[i].MemberID, err)
	}
	if _, err := s.cfg.Client.MemberRemove(ctx, id); err != nil {
		return unavailable("remove etcd member "+name, err)
	}
	if _, err := s.cfg.Client.Delete(ctx, presencePrefix+name); err != nil {
		s.log.Warn("delete the presence of a removed server", "server", name, "err", err)
	}
	s.log.Info("server removed", "server", name, "member", servers[i].MemberID)
	return nil
}

// promoteLearners makes voting members of the learners that have caught
// up with the leader; etcd refuses the others, which are tried again.
func (s *Servers) promoteLearners(ctx context.Context) {
	members, err := s.cfg.Client.MemberList(ctx)
	if err != nil {
		return
	}
	for _, m := range members.Members {
		if !m.IsLearner || m.Name == "" {
			continue
		}
		if _, err := s.cfg.Client.MemberPromote(ctx, m.ID); err != nil {
			s.log.Debug("promote etcd learner", "member", m.Name, "err", err)
			continue
		}
		s.log.Info("etcd learner promoted to voting member", "member", m.Name)
	}
}

// Announce keeps /ouro/servers/<name> alive, with PresenceTTL, while
// ready says this server is ready, and deletes it when not, until ctx
// ends. Every ready server also promotes the etcd learners of joining
// servers once they have caught up.
func (s *Servers) Announce(ctx context.Context, ready func(context.Context) error) {
	val, _ := json.Marshal(presence{APIURL: s.cfg.APIURL})
	key := presencePrefix + s.cfg.Name
	var lease clientv3.LeaseID
	tick := time.NewTicker(announceInterval)
	defer tick.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := ready(rctx)
		switch {
		case err != nil && lease != 0:
			s.cfg.Client.Revoke(rctx, lease)
			lease = 0
		case err == nil && lease != 0:
			if _, kerr := s.cfg.Client.KeepAliveOnce(rctx, lease); kerr != nil {
				lease = 0
			}
		}
		if err == nil && s.cfg.Stacked {
			s.promoteLearners(rctx)
		}
		if err == nil && lease == 0 {
			if g, gerr := s.cfg.Client.Grant(rctx, int64(PresenceTTL/time.Second)); gerr == nil {
				if _, perr := s.cfg.Client.Put(rctx, key, string(val), clientv3.WithLease(g.ID)); perr == nil {
					lease = g.ID
				}
			}
		}
		cancel()
		select {
		case <-ctx.Done():
			if lease != 0 {
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
				s.cfg.Client.Revoke(rctx, lease)
				cancel()
			}
			return
		case <-tick.C:
		}
	}
}

func refused(format string, args ...any) error {
	return &api.Error{Status: http.StatusConflict, Code: api.CodeConflict, Message: fmt.Sprintf(format, args...)}
}

func unavailable(what string, err error) error {
	if ae := (*api.Error)(nil); errors.As(err, &ae) {
		return err
	}
	return &api.Error{Status: http.StatusServiceUnavailable, Code: api.CodeUnavailable,
		Message: fmt.Sprintf("%s: %v", what, err), Hint: "etcd may have lost its quorum; retry shortly"}
}

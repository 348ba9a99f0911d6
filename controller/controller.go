// Package controller runs the control-plane controllers on the elected
// leader: the scheduler, the instance lifecycle controller, the host
// health controller, the network controller, the load balancer
// controller, the volume controller, the instance group controller and
// the stack controller.
//
//	Run ─▶ election.Run ─ leader ─▶ RunLeader(ctx, store.WithGuard(guard))
//	                                  informers: hosts, instances, groups,
//	                                             loadbalancers, hostnetworks,
//	                                             volumes, volumesnapshots
//	                                  scheduler · lifecycle · hosthealth · network
//	                                  loadbalancer · volume · group · stack (+ informers
//	                                  of the kinds stacks own)
//	          leadership lost ─▶ ctx cancelled ─▶ every controller stops;
//	                             a write still in flight fails its guard
//
// Every server runs Run; only the leader's controllers act, and their
// writes go through a store guarded by the leader key, so a deposed
// leader's late writes are refused by etcd.
package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/controller/cache"
	"github.com/ouroboros-cloud/ouro/controller/ec2record"
	"github.com/ouroboros-cloud/ouro/controller/group"
	"github.com/ouroboros-cloud/ouro/controller/hosthealth"
	"github.com/ouroboros-cloud/ouro/controller/lifecycle"
	"github.com/ouroboros-cloud/ouro/controller/loadbalancer"
	"github.com/ouroboros-cloud/ouro/controller/network"
	"github.com/ouroboros-cloud/ouro/controller/scheduler"
	stackctl "github.com/ouroboros-cloud/ouro/controller/stack"
	volumectl "github.com/ouroboros-cloud/ouro/controller/volume"
	"github.com/ouroboros-cloud/ouro/election"
	"github.com/ouroboros-cloud/ouro/record"
	"github.com/ouroboros-cloud/ouro/store"
)

// Defaults of Config.
const (
	// DefaultElectionName is the election every server campaigns in.
	DefaultElectionName = "controller"
	// DefaultLeaseTTL is the TTL of the leader's election session: a dead
	// leader is replaced within about this long.
	DefaultLeaseTTL = election.DefaultTTL
)

// Config configures the controllers.
type Config struct {
	// Client is the etcd client used for the election.
	Client *clientv3.Client
	// Store is the object store (unguarded; Run guards it per term).
	Store store.Interface
	// Identity names this server in the election (for example its host
	// name).
	Identity string
	Logger   *slog.Logger
	// LeaseTTL is the election session TTL (default DefaultLeaseTTL).
	LeaseTTL time.Duration
	// ElectionName defaults to DefaultElectionName.
	ElectionName string
	// Resync is the informers' resync period (default cache.DefaultResync).
	Resync time.Duration
	// SchedulerCommits bounds concurrent placement writes (default
	// scheduler.DefaultCommits).
	SchedulerCommits int
	// InstanceCreator creates group members as the API creates instances
	// (an *admission.Admitter). Without it the group controller does not
	// run.
	InstanceCreator group.InstanceCreator
	// StackWriter writes the objects of stacks as the API does, as each
	// stack's author (an *apiserver.Server). Without it the stack
	// controller does not run.
	StackWriter stackctl.ObjectWriter
	// LeaderProbe, when set, lets this server take over from a leader
	// whose process it finds certainly gone without waiting for the
	// leader's election lease to run out (election.WithLeaderProbe).
	LeaderProbe election.Probe
	// HostLostGrace is how long a host stays NotReady before the group
	// controller replaces the members on it (default 0: at once).
	HostLostGrace time.Duration
	// Fencer cuts lost hosts off the shared (ceph) storage pools before
	// their volumes attach elsewhere; nil runs no fence controller.
	Fencer volumectl.Fencer
}

func (cfg *Config) defaults() {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.ElectionName == "" {
		cfg.ElectionName = DefaultElectionName
	}
}

// Run campaigns for leadership until ctx ends and, while leader, runs every
// controller with cfg.Store guarded by the leadership. The controllers stop
// the moment leadership is lost; after a failure of a controller, Run
// steps down and campaigns again.
func Run(ctx context.Context, cfg Config) error {
	cfg.defaults()
	if cfg.Client == nil || cfg.Store == nil {
		return errors.New("controller: Config needs Client and Store")
	}
	if cfg.Identity == "" {
		return errors.New("controller: Config needs an Identity")
	}
	log := cfg.Logger.With("identity", cfg.Identity)
	var opts []election.Option
	if cfg.LeaderProbe != nil {
		opts = append(opts, election.WithLeaderProbe(cfg.LeaderProbe))
	}
	err := election.Run(ctx, cfg.Client, cfg.ElectionName, cfg.Identity, cfg.LeaseTTL,
		func(lctx context.Context, guard store.Guard) {
			log.Info("leading the controllers", "key", guard.Key(), "revision", guard.Revision())
			if err := RunLeader(lctx, cfg.Store.WithGuard(guard), cfg); err != nil {
				log.Error("controllers failed; stepping down", "err", err)
			}
		}, opts...)
	if err != nil {
		return fmt.Errorf("controller: election: %w", err)
	}
	return nil
}

// component is something RunLeader runs until its context ends.
type component struct {
	name string
	run  func(context.Context) error
}

// RunLeader runs every controller against st until ctx ends, and returns
// once all of them have stopped. st should be guarded by the leadership
// that ctx stands for. If a controller fails, the others are stopped and
// the error is returned.
func RunLeader(ctx context.Context, st store.Interface, cfg Config) error {
	cfg.defaults()
	log := cfg.Logger
	hosts := cache.New(st, api.HostKind, cfg.Resync, log)
	instances := cache.New(st, api.InstanceKind, cfg.Resync, log)
	lbs := cache.New(st, api.LoadBalancerKind, cfg.Resync, log)
	hostNets := cache.New(st, api.HostNetworkKind, cfg.Resync, log)

	schedRec := record.New(st, "scheduler").WithLogger(log)
	lifeRec := record.New(st, "instance-controller").WithLogger(log)
	healthRec := record.New(st, "host-controller").WithLogger(log)
	defer schedRec.Wait()
	defer lifeRec.Wait()
	defer healthRec.Wait()
	lbRec := record.New(st, "loadbalancer-controller").WithLogger(log)
	defer lbRec.Wait()

	sched := scheduler.New(scheduler.Options{
		Store: st, Hosts: hosts, Instances: instances, Recorder: schedRec, Logger: log,
		Commits: cfg.SchedulerCommits,
	})
	life := lifecycle.New(lifecycle.Options{
		Store: st, Hosts: hosts, Instances: instances, Recorder: lifeRec, Logger: log,
	})
	// Instances deleted other than by TerminateInstances stay visible to
	// the EC2 API as terminated for an hour.
	ec2rec := ec2record.New(ec2record.Options{Store: st, Instances: instances, Hosts: hosts, Logger: log})
	health := hosthealth.New(hosthealth.Options{
		Store: st, Hosts: hosts, Recorder: healthRec, Logger: log, Resync: cfg.Resync,
	})
	nets := network.New(network.Options{
		Store: st, Hosts: hosts, Instances: instances, LoadBalancers: lbs, Logger: log, Resync: cfg.Resync,
		Recorder: record.New(st, "network-controller").WithLogger(log),
	})
	lbc := loadbalancer.New(loadbalancer.Options{
		Store: st, LoadBalancers: lbs, HostNetworks: hostNets, Hosts: hosts, Instances: instances,
		Recorder: lbRec, Logger: log,
	})
	vols := cache.New(st, api.VolumeKind, cfg.Resync, log)
	snaps := cache.New(st, api.VolumeSnapshotKind, cfg.Resync, log)
	volc := volumectl.New(volumectl.Options{Store: st, Volumes: vols, Snapshots: snaps, Instances: instances, Logger: log})
	components := []component{
		{"host informer", hosts.Run},
		{"volume informer", vols.Run},
		{"snapshot informer", snaps.Run},
		{"volume", volc.Run},
		{"instance informer", instances.Run},
		{"scheduler", sched.Run},
		{"lifecycle", life.Run},
		{"ec2record", ec2rec.Run},
		{"hosthealth", health.Run},
		{"network", nets.Run},
		{"loadbalancer informer", lbs.Run},
		{"hostnetwork informer", hostNets.Run},
		{"loadbalancer", lbc.Run},
	}
	if cfg.Fencer != nil {
		fc := volumectl.NewFence(volumectl.FenceOptions{Store: st, Hosts: hosts, Fencer: cfg.Fencer,
			HostLostGrace: cfg.HostLostGrace, Logger: log})
		components = append(components, component{"fence", fc.Run})
	}
	groups := cache.New(st, api.InstanceGroupKind, cfg.Resync, log)
	if cfg.InstanceCreator != nil || cfg.StackWriter != nil {
		components = append(components, component{"group informer", groups.Run})
	}
	if cfg.InstanceCreator != nil {
		groupRec := record.New(st, "group-controller").WithLogger(log)
		defer groupRec.Wait()
		gc := group.New(group.Options{
			Store: st, Groups: groups, Instances: instances, Hosts: hosts, LoadBalancers: lbs, Creator: cfg.InstanceCreator,
			Recorder: groupRec, Logger: log, HostLostGrace: cfg.HostLostGrace,
		})
		components = append(components, component{"group", gc.Run})
	}
	if cfg.StackWriter != nil {
		stacks := cache.New(st, api.StackKind, cfg.Resync, log)
		owned := []*cache.Informer{instances, groups, lbs}
		for _, k := range []*api.Kind{api.VPCKind, api.NetworkKind, api.SecurityGroupKind, api.KeyPairKind, api.ImageKind, api.FlavorKind, api.FloatingIPKind} {
			in := cache.New(st, k, cfg.Resync, log)
			owned = append(owned, in)
			components = append(components, component{k.Plural + " informer", in.Run})
		}
		stackRec := record.New(st, "stack-controller").WithLogger(log)
		defer stackRec.Wait()
		sc := stackctl.New(stackctl.Options{
			Store: st, Stacks: stacks, Owned: owned, Writer: cfg.StackWriter, Recorder: stackRec, Logger: log,
		})
		components = append(components, component{"stack informer", stacks.Run}, component{"stack", sc.Run})
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for _, c := range components {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.run(ctx)
			if ctx.Err() != nil {
				return // stopping, as asked
			}
			if err == nil {
				err = errors.New("stopped unexpectedly")
			}
			errOnce.Do(func() {
				firstErr = fmt.Errorf("controller %s: %w", c.name, err)
				cancel()
			})
		}()
	}
	log.Info("controllers started")
	wg.Wait()
	log.Info("controllers stopped")
	return firstErr
}

// Package blobrepl keeps every server's blob store holding every blob
// that images refer to, so that blobs survive the loss of any one server
// and any server can answer for any blob.
//
//	upload to A ──▶ A stores it ──▶ push to every ready peer; answer once one has it
//	every minute, and at start ──▶ fetch the referenced blobs this server lacks
//	GET of a blob A lacks ──▶ fetch it from a peer, then serve it
//
// Servers talk to each other over mutual TLS on the internal routes under
// PathPrefix: a caller must present a certificate of the cluster CA with
// the servers' common name (pki.ServerCN); tokens are never accepted
// there. Every copy is written through blobstore.Store.Put, so it appears
// under its digest only once its content hashes to it.
//
// Peers are the servers whose presence is announced (package
// membership), less this one. With no peers a Replicator does nothing.
package blobrepl

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/ouroboros-cloud/ouro/blobaccess"
	"github.com/ouroboros-cloud/ouro/blobstore"
	"github.com/ouroboros-cloud/ouro/pki"
)

// DefaultRepairInterval is how often a server looks for referenced blobs
// it lacks unless Config.RepairInterval says otherwise.
const DefaultRepairInterval = time.Minute

// Config configures a Replicator.
type Config struct {
	// Name is this server's name, skipped among the peers.
	Name string
	// Store is this server's blob store.
	Store *blobstore.Store
	// Access lists the blobs images refer to, and records who uploaded
	// a blob pushed by a peer, so that its user may make an image of it
	// through any server.
	Access *blobaccess.Index
	// Peers returns the API URL of every ready server by name
	// (membership.Present); this server may be among them.
	Peers func(ctx context.Context) (map[string]string, error)
	// CA is the cluster CA: peers' certificates must chain to it, and
	// callers of the internal routes must present one it signed.
	CA *pki.CA
	// Cert is this server's certificate, presented to peers.
	Cert *tls.Certificate
	// RepairInterval overrides DefaultRepairInterval.
	RepairInterval time.Duration
	Logger         *slog.Logger
}

// Replicator copies blobs between this server and its peers. Its methods
// are safe for concurrent use.
type Replicator struct {
	cfg  Config
	log  *slog.Logger
	http *http.Client

	// life bounds the pushes that go on after an upload was answered;
	// Run ends it.
	life    context.Context
	stop    context.CancelFunc
	pushing sync.WaitGroup

	// fetching coalesces concurrent fetches of one blob.
	fetchMu  sync.Mutex
	fetching map[string]*fetch
}

// fetch is a fetch of one blob in progress; err is set before done closes.
type fetch struct {
	done chan struct{}
	err  error
}

// New returns a Replicator; nothing runs until Run.
func New(cfg Config) *Replicator {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RepairInterval <= 0 {
		cfg.RepairInterval = DefaultRepairInterval
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: cfg.CA.Pool()}
	if cfg.Cert != nil {
		tlsConf.Certificates = []tls.Certificate{*cfg.Cert}
	}
	r := &Replicator{cfg: cfg, log: cfg.Logger, fetching: map[string]*fetch{},
		http: &http.Client{Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 15 * time.Second}).DialContext,
			TLSClientConfig:     tlsConf,
			TLSHandshakeTimeout: 5 * time.Second,
			IdleConnTimeout:     90 * time.Second,
			MaxIdleConnsPerHost: 4,
		}}}
	r.life, r.stop = context.WithCancel(context.Background())
	return r
}

// Run repairs this server's store now and every RepairInterval until ctx
// ends, then waits for the pushes still going on after their uploads
// were answered, which end with it.
func (r *Replicator) Run(ctx context.Context) {
	defer func() {
		r.stop()
		r.pushing.Wait()
	}()
	t := time.NewTicker(r.cfg.RepairInterval)
	defer t.Stop()
	for {
		if err := r.Repair(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("blob repair failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// peer is another ready server.
type peer struct{ name, url string }

// peers returns the ready servers other than this one, in random order so
// that the load of fetches is spread.
func (r *Replicator) peers(ctx context.Context) ([]peer, error) {
	present, err := r.cfg.Peers(ctx)
	if err != nil {
		return nil, err
	}
	var out []peer
	for name, url := range present {
		if name != r.cfg.Name && url != "" {
			out = append(out, peer{name, url})
		}
	}
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out, nil
}

// Replicate copies the blob with the given hex digest, just stored here
// and uploaded by user, to the ready peers. It returns once one of them
// holds it; the others get it in the background. With no peers it
// returns nil at once; when every peer failed, the error of one.
func (r *Replicator) Replicate(ctx context.Context, user, hexDigest string) error {
	peers, err := r.peers(ctx)
	if err != nil {
		return fmt.Errorf("replicate blob: %w", err)
	}
	if len(peers) == 0 {
		return nil
	}
	results := make(chan error, len(peers))
	for _, p := range peers {
		r.pushing.Go(func() {
			err := r.push(r.life, p, user, hexDigest)
			if err != nil {
				r.log.Warn("push blob to peer", "peer", p.name, "digest", hexDigest, "err", err)
			}
			results <- err
		})
	}
	var first error
	for range peers {
		select {
		case err := <-results:
			if err == nil {
				return nil
			}
			if first == nil {
				first = err
			}
		case <-ctx.Done():
			return fmt.Errorf("replicate blob: %w", ctx.Err())
		}
	}
	return fmt.Errorf("replicate blob to %d servers: %w", len(peers), first)
}

// Fetch copies the blob with the given hex digest from a peer that holds
// it into this server's store. It returns an error matching
// fs.ErrNotExist when no peer holds it. Concurrent fetches of one blob
// share one copy.
func (r *Replicator) Fetch(ctx context.Context, hexDigest string) error {
	r.fetchMu.Lock()
	f, ok := r.fetching[hexDigest]
	if !ok {
		f = &fetch{done: make(chan struct{})}
		r.fetching[hexDigest] = f
		go func() {
			// The copy outlives a caller who leaves: others may wait on it.
			ctx, cancel := context.WithCancel(r.life)
			defer cancel()
			f.err = r.fetch(ctx, hexDigest)
			r.fetchMu.Lock()
			delete(r.fetching, hexDigest)
			r.fetchMu.Unlock()
			close(f.done)
		}()
	}
	r.fetchMu.Unlock()
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return fmt.Errorf("fetch blob: %w", ctx.Err())
	}
}

// fetch asks the peers in turn for the blob until one has it.
func (r *Replicator) fetch(ctx context.Context, hexDigest string) error {
	peers, err := r.peers(ctx)
	if err != nil {
		return fmt.Errorf("fetch blob: %w", err)
	}
	var errs []error
	for _, p := range peers {
		err := r.pull(ctx, p, hexDigest)
		if err == nil {
			return nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("fetch blob sha256:%s: %w", hexDigest, errors.Join(errs...))
	}
	return fmt.Errorf("fetch blob sha256:%s: no peer holds it: %w", hexDigest, fs.ErrNotExist)
}

// Repair fetches from the peers every blob that images refer to and that
// this server lacks.
func (r *Replicator) Repair(ctx context.Context) error {
	peers, err := r.peers(ctx)
	if err != nil || len(peers) == 0 {
		return err
	}
	used, err := r.cfg.Access.Referenced(ctx)
	if err != nil {
		return fmt.Errorf("list referenced blobs: %w", err)
	}
	var missing, fetched int
	var errs []error
	for d := range used {
		if _, err := r.cfg.Store.Stat(d); !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		missing++
		if err := r.Fetch(ctx, d); err != nil {
			errs = append(errs, err)
			continue
		}
		fetched++
	}
	if missing > 0 {
		r.log.Info("repaired blob store", "missing", missing, "fetched", fetched)
	}
	return errors.Join(errs...)
}

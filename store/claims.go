package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ouroboros-cloud/ouro/api"
)

// Claims are unique keys an object holds, such as an IP address of a
// network: /ouro/claims/<claim> holds the object's key. They are written
// only together with the object, in one transaction, and the list of an
// object's claims is kept beside it in /ouro/claimsof/<object key>, so
// that deleting the object releases exactly its claims in the same
// transaction. A process that dies at any line leaves either all of a
// write or none of it: no claim ever leaks or is handed out twice.
const (
	claimPrefix   = "/ouro/claims/"
	claimsOfRoot  = "/ouro/claimsof"
	maxClaims     = 64
	maxClaimBytes = 512
)

// maxDeleteRetries bounds the re-reads of an unconditional delete racing
// with writes of the object.
const maxDeleteRetries = 16

// claimsOfKey is the key listing the claims of the object at key.
func claimsOfKey(objKey string) string { return claimsOfRoot + objKey }

// heldClaims is the decoded claims list of an object and the revision of
// its key (0 when the object holds none).
type heldClaims struct {
	claims []string
	rev    int64
}

// checkClaim validates one relative claim key.
func checkClaim(c string) error {
	if c == "" || len(c) > maxClaimBytes || strings.HasPrefix(c, "/") || strings.HasSuffix(c, "/") {
		return fmt.Errorf("invalid claim %q", c)
	}
	for _, seg := range strings.Split(c, "/") {
		if seg == "" || !validSegment(seg) {
			return fmt.Errorf("invalid claim %q", c)
		}
	}
	return nil
}

// checkClaims validates a list of claims: valid keys, no duplicates.
func checkClaims(claims []string) error {
	if len(claims) > maxClaims {
		return fmt.Errorf("%d claims, at most %d allowed", len(claims), maxClaims)
	}
	for i, c := range claims {
		if err := checkClaim(c); err != nil {
			return err
		}
		if slices.Contains(claims[:i], c) {
			return fmt.Errorf("claim %q given twice", c)
		}
	}
	return nil
}

// claimOps returns, for a create of the object at objKey, the comparisons
// requiring every claim free, the writes taking them (and the claims
// list), and reads of the claims for the Else branch.
func claimOps(objKey string, claims []string) (cmps []clientv3.Cmp, puts, gets []clientv3.Op, err error) {
	if len(claims) == 0 {
		return nil, nil, nil, nil
	}
	if err := checkClaims(claims); err != nil {
		return nil, nil, nil, err
	}
	list, err := json.Marshal(claims)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("encode claims: %w", err)
	}
	for _, c := range claims {
		k := claimPrefix + c
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(k), "=", 0))
		puts = append(puts, clientv3.OpPut(k, objKey))
		gets = append(gets, clientv3.OpGet(k))
	}
	puts = append(puts, clientv3.OpPut(claimsOfKey(objKey), string(list)))
	return cmps, puts, gets, nil
}

// claimTaken inspects the claim reads of a failed txn, starting at
// response index at, and returns a *ClaimError for the first taken claim
// (nil if none is).
func claimTaken(resp *clientv3.TxnResponse, at int, claims []string) error {
	for i, c := range claims {
		if at+i >= len(resp.Responses) {
			break
		}
		if kvs := resp.Responses[at+i].GetResponseRange().Kvs; len(kvs) > 0 {
			return &ClaimError{Claim: c, Holder: string(kvs[0].Value)}
		}
	}
	return nil
}

// readWithClaims reads the object at key and its claims list at one
// revision. The object is nil if it does not exist.
func (s *etcdStore) readWithClaims(ctx context.Context, key string) (*mvccpb.KeyValue, heldClaims, error) {
	resp, err := s.cli.Txn(ctx).Then(clientv3.OpGet(key), clientv3.OpGet(claimsOfKey(key))).Commit()
	if err != nil {
		return nil, heldClaims{}, err
	}
	var obj *mvccpb.KeyValue
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		obj = kvs[0]
	}
	var held heldClaims
	if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
		if err := json.Unmarshal(kvs[0].Value, &held.claims); err != nil {
			return nil, heldClaims{}, fmt.Errorf("decode claims of %s: %w", key, err)
		}
		held.rev = kvs[0].ModRevision
	}
	return obj, held, nil
}

// ListClaims implements Interface.
func (s *etcdStore) ListClaims(ctx context.Context, prefix string) (map[string]string, error) {
	if strings.HasPrefix(prefix, "/") || strings.Contains(prefix, "..") {
		return nil, fmt.Errorf("store: list claims: invalid prefix %q", prefix)
	}
	resp, err := s.cli.Get(ctx, claimPrefix+prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("store: list claims %q: %w", prefix, err)
	}
	out := make(map[string]string, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		out[strings.TrimPrefix(string(kv.Key), claimPrefix)] = string(kv.Value)
	}
	return out, nil
}

// UpdateClaims implements Interface.
func (s *etcdStore) UpdateClaims(ctx context.Context, obj api.Object, add, release []string) error {
	kind, m := obj.GetKind(), obj.Meta()
	project := projectOf(obj)
	if err := checkName(kind, project, m.Name); err != nil {
		return err
	}
	if err := checkClaims(add); err != nil {
		return fmt.Errorf("store: update %s %q: %w", kind.Name, m.Name, err)
	}
	rv, err := parseRV(m.ResourceVersion)
	if err != nil {
		return fmt.Errorf("store: update %s %q: %w", kind.Name, m.Name, err)
	}
	key := objectKey(kind, project, m.Name)
	cur, held, err := s.readWithClaims(ctx, key)
	if err != nil {
		return fmt.Errorf("store: update %s %q: %w", kind.Name, m.Name, err)
	}
	if cur == nil {
		return fmt.Errorf("store: update %s %q: %w", kind.Name, m.Name, ErrNotFound)
	}
	if cur.ModRevision != rv {
		return fmt.Errorf("store: update %s %q at version %d, stored %d: %w", kind.Name, m.Name, rv, cur.ModRevision, ErrConflict)
	}
	stored, err := decodeNew(kind, cur)
	if err != nil {
		return err
	}
	m.UID = stored.Meta().UID
	m.CreationTimestamp = stored.Meta().CreationTimestamp
	val, err := encode(obj)
	if err != nil {
		return err
	}

	cmps := []clientv3.Cmp{
		clientv3.Compare(clientv3.ModRevision(key), "=", rv),
		clientv3.Compare(clientv3.ModRevision(claimsOfKey(key)), "=", held.rev),
	}
	then := []clientv3.Op{clientv3.OpPut(key, string(val), clientv3.WithIgnoreLease())}
	els := []clientv3.Op{clientv3.OpGet(key, clientv3.WithKeysOnly())}
	var next, taking []string
	for _, c := range held.claims {
		if slices.Contains(release, c) && !slices.Contains(add, c) {
			then = append(then, clientv3.OpDelete(claimPrefix+c))
			continue
		}
		next = append(next, c)
	}
	for _, c := range add {
		if slices.Contains(held.claims, c) {
			continue
		}
		k := claimPrefix + c
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(k), "=", 0))
		then = append(then, clientv3.OpPut(k, key))
		els = append(els, clientv3.OpGet(k))
		next = append(next, c)
		taking = append(taking, c)
	}
	if len(next) > maxClaims {
		return fmt.Errorf("store: update %s %q: %d claims, at most %d allowed", kind.Name, m.Name, len(next), maxClaims)
	}
	if len(next) == 0 {
		then = append(then, clientv3.OpDelete(claimsOfKey(key)))
	} else {
		list, err := json.Marshal(next)
		if err != nil {
			return fmt.Errorf("store: encode claims: %w", err)
		}
		then = append(then, clientv3.OpPut(claimsOfKey(key), string(list)))
	}

	resp, err := s.cli.Txn(ctx).
		If(append(cmps, s.guardCmps()...)...).
		Then(then...).
		Else(append(els, s.guardGets()...)...).
		Commit()
	if err != nil {
		return fmt.Errorf("store: update %s %q: %w", kind.Name, m.Name, err)
	}
	if !resp.Succeeded {
		if err := s.guardFailed(resp); err != nil {
			return err
		}
		objKVs := resp.Responses[0].GetResponseRange().Kvs
		if len(objKVs) > 0 && objKVs[0].ModRevision == rv {
			if err := claimTaken(resp, 1, taking); err != nil {
				return fmt.Errorf("store: update %s %q: %w", kind.Name, m.Name, err)
			}
		}
		return s.writeFailed(resp, "update", kind, m.Name)
	}
	m.ResourceVersion = strconv.FormatInt(resp.Header.Revision, 10)
	return nil
}

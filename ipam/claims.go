package ipam

import (
	"fmt"
	"net/http"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/store"
)

// Error codes of allocations that cannot be made.
const (
	// CodeInsufficientAddresses is the code of a network or pool with no
	// free address.
	CodeInsufficientAddresses = "InsufficientAddresses"
	// CodeAddressInUse is the code of an address asked for that another
	// object holds.
	CodeAddressInUse = "AddressInUse"
)

// VNI range handed out to networks: 4096 up to the 24-bit maximum, which
// leaves the low VNIs to anything else on the underlay.
const (
	FirstVNI = 4096
	LastVNI  = 1<<24 - 1
)

// maxClaimAttempts bounds the retries of a network create whose chosen
// VNI was taken meanwhile by a concurrent create. Addresses (instances,
// floating IPs) retry as long as free addresses remain instead.
const maxClaimAttempts = 64

// Claim keys (relative to the store's claims root).
func ipClaimPrefix(networkUID string) string { return "ip/" + networkUID + "/" }
func fipClaimPrefix(pool string) string      { return "fip/" + pool + "/" }
func vniClaim(vni int) string                { return fmt.Sprintf("vni/%d", vni) }

// fipInstanceClaim is held by the floating IP associated with an instance,
// so that an instance has at most one.
func fipInstanceClaim(project, instance string) string {
	return "fipinstance/" + project + "/" + instance
}

// noFreeAddress answers 409 for a full network or pool.
func noFreeAddress(field, what string, inUse int) error {
	return &api.Error{Status: http.StatusConflict, Code: CodeInsufficientAddresses, Field: field,
		Message: fmt.Sprintf("%s has no free address (%d in use)", what, inUse),
		Hint:    "free an address or use another network or pool"}
}

// addressTaken answers 409 for an address asked for that another object
// holds.
func addressTaken(field string, al *ifaceAlloc, ce *store.ClaimError) error {
	msg := fmt.Sprintf("address %s of network %s is in use", al.fixed, al.net.Metadata.Name)
	if h := ce.HolderName(); h != "" {
		msg += " by " + h
	}
	return &api.Error{Status: http.StatusConflict, Code: CodeAddressInUse, Field: field, Message: msg,
		Hint: "ask for another address, or leave ip out for a free one"}
}

// associationTaken answers 409 for an instance that has a floating IP.
func associationTaken(instance string, ce *store.ClaimError) error {
	return &api.Error{Status: http.StatusConflict, Code: api.CodeConflict, Field: "spec.instance",
		Message: fmt.Sprintf("instance %q already has floating IP %q", instance, ce.HolderName()),
		Hint:    "disassociate that floating IP first"}
}

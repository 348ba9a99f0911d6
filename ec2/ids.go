package ec2

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
)

// Id prefixes of the kinds mapped.
const (
	PrefixInstance      = "i"
	PrefixSecurityGroup = "sg"
	PrefixImage         = "ami"
	PrefixKeyPair       = "key"
	PrefixAllocation    = "eipalloc"
	PrefixAssociation   = "eipassoc"
	PrefixSubnet        = "subnet"
	PrefixInterface     = "eni"
	PrefixRule          = "sgr"
	PrefixReservation   = "r"
)

// ID returns the AWS-form id of an object: prefix, '-' and 17 hex
// digits of the SHA-256 of its UID (or of any other stable string). It
// needs no state: every server computes the same id.
func ID(prefix, uid string) string {
	sum := sha256.Sum256([]byte(prefix + "\x00" + uid))
	return prefix + "-" + hex.EncodeToString(sum[:])[:17]
}

// idOf returns the id of obj.
func idOf(prefix string, obj api.Object) string { return ID(prefix, obj.Meta().UID) }

// validID reports whether id has prefix's form.
func validID(prefix, id string) bool {
	rest, ok := strings.CutPrefix(id, prefix+"-")
	if !ok || len(rest) != 17 {
		return false
	}
	for _, c := range rest {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// PrefixVPC starts VPC ids.
const PrefixVPC = "vpc"

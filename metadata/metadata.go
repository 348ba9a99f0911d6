// Package metadata serves the EC2-compatible instance metadata service that
// instances reach at http://169.254.169.254/: cloud-init (and anything
// written for EC2) reads the instance's ID, host name, addresses, SSH keys
// and user-data there.
//
// A Handler serves one network. It identifies the caller by the source
// address of the connection, which on an ouro network cannot be forged
// (the router's anti-spoofing rules admit from each instance port only its
// own address), and answers with that instance's data only:
//
//	GET /latest/meta-data/                      listing
//	GET /latest/meta-data/instance-id           the instance UID
//	GET /latest/meta-data/public-keys/0/openssh-key
//	GET /latest/user-data                       404 when there is none
//	PUT /latest/api/token                       IMDSv2 session token
//
// Any version segment of the form YYYY-MM-DD is served like "latest", as
// cloud-init asks for dated versions first.
package metadata

import (
	"net/netip"
)

// Address is where instances reach the service.
const Address = "169.254.169.254"

// Port is the service's TCP port.
const Port = 80

// Instance is what the service tells an instance about itself.
type Instance struct {
	// ID is the instance UID: the instance-id cloud-init also finds in
	// the NoCloud seed of virtual machines.
	ID string
	// Name is the instance name, its host name.
	Name string
	// InstanceType is the flavor.
	InstanceType string
	// LocalIPv4 and MAC are the instance's interface on the network.
	LocalIPv4 string
	MAC       string
	// PublicIPv4 is the associated floating IP, or "".
	PublicIPv4 string
	// KeyName names the key pair PublicKeys came from.
	KeyName    string
	PublicKeys []string
	// UserData is served raw at /latest/user-data; empty is 404.
	UserData string
	// Zone is the availability zone.
	Zone string
}

// Lookup finds the instance that has addr on the handler's network.
type Lookup interface {
	Instance(addr netip.Addr) (*Instance, bool)
}

// LookupFunc adapts a function to Lookup.
type LookupFunc func(addr netip.Addr) (*Instance, bool)

// Instance calls f.
func (f LookupFunc) Instance(addr netip.Addr) (*Instance, bool) { return f(addr) }

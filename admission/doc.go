// Package admission is where an instance is validated and its address
// allocated: it decides whether a create or an update of an instance is
// valid and makes it complete before it is stored. It applies the
// defaults, checks every field against its bounds, resolves the flavor
// (copying its resources), the image (to project/name), the key pair
// (copying its public key), the networks and security groups, and claims
// an address on each network through package ipam in the transaction that
// stores the instance. Instance groups are admitted by admitting their
// template as the create of their first member, and the networks,
// security groups and floating IP pools instances attach to are admitted
// here too, as are key pairs, projects, users, flavors, hosts, images and
// load balancers (whose VIP, port addresses and floating IP are claimed
// through ipam in the transaction that stores them, StoreLoadBalancer).
// An image's blobs are checked through Blobs, which the API server answers
// from its blob store and blob access index, and a public image's name is
// claimed in the transaction that publishes it (StoreImage, UpdateImage).
//
// Every front end calls it the same way — the REST API, the group
// controller making members, and later the EC2 API, stacks, load
// balancers and the web console — with a context and the identity asking,
// never an HTTP request. Refusals are *api.Error values naming the field,
// the reason and a hint, which a front end returns as they are.
//
//	front end ─▶ Admitter.ValidateInstanceCreate ─▶ Admitter.StoreInstance ─▶ store (claims)
//	             (defaults, bounds, flavor, image,      (ipam: an address per
//	              key pair, networks, groups)            network, one transaction)
package admission

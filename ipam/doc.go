// Package ipam is where an instance's addresses are allocated: it hands
// out the host addresses of networks, the VNIs of networks and the
// addresses of floating IP pools, and never hands one out twice. Every
// allocation is a claim in the store (docs/networking.md, "IPAM") taken in
// the same transaction that creates its holder, so the store, not this
// package, decides who wins a race; an Allocator only picks candidates,
// retries the ones taken meanwhile, and answers a full network or pool
// with an api.Error that names the field. The claim keys are
//
//	ip/<network-uid>/<address>     an instance's address on a network, or
//	                               a load balancer's VIP or port address
//	vni/<vni>                      a network's VXLAN network identifier
//	fip/<pool>/<address>           a floating IP's or load balancer's
//	                               outside address
//	fipinstance/<project>/<name>   the one floating IP of an instance
//
// Package admission uses it when it admits an instance; the API server
// uses it for networks, floating IPs and load balancers.
package ipam

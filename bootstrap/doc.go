// Package bootstrap installs Ouroboros onto machines from an inventory:
// over SSH (host keys checked against known_hosts), for each host it
// detects the architecture and the service manager, installs the Debian
// packages the host's roles need (or names those missing where there is
// no package mirror), copies the ouro binary for its architecture, writes
// the services (systemd units, the agent's with KillMode=process so a
// restart never kills instances; processes started directly where there
// is no systemd), starts the first server, joins the other servers into
// its etcd cluster one at a time and joins every agent.
//
// Every step first reads what the host has and changes it only when it
// differs from what the inventory asks, so a second run reports every step
// "unchanged", a host added to the inventory is the only one touched, and
// a rerun after a failure picks up where the failure stopped. Check mode
// reports what would change without changing it. Upgrade rolls a new
// binary through the servers one at a time, each ready again before the
// next, then through the agents, which adopt their running instances.
//
// Hosts are reached by address or, for a cloud built on the instances of
// another, as an instance of the current cloud through its API's port
// forward (package client), so instances need no public address.
package bootstrap

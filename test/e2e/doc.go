// Package e2e holds the end-to-end tests of Ouroboros: they build the ouro
// binary, start real servers (with embedded or external etcd) and agents
// (with runc) as separate processes, and drive them through the same CLI
// commands a user types. Everything a test starts — processes, containers,
// mounts, directories — is removed when it ends, also when it fails.
package e2e

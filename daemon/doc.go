// Package daemon wires the long-running roles of the ouro binary: the
// server (etcd, store, API, controllers), the host agent (drivers,
// reconciler), and "up", which runs both in one process with embedded etcd
// for a one-machine cloud. All wiring lives here so that the packages it
// assembles stay free of side effects in their constructors.
package daemon

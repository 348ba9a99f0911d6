// Package api defines the resources of the Ouroboros API (version v1): their
// metadata, spec and status, the error body every endpoint returns, watch
// events, label selectors and the validation rules shared by server and CLI.
//
// Every resource has metadata (name, project, uid, generation,
// resourceVersion, labels, creation time), a spec that users write and a
// status that controllers and agents write.
package api

// Package stack reads stack files and reasons about stacks without a
// store: it loads YAML documents (resources in the API's shape plus an
// optional "kind: Stack" header), renders ${param.NAME} parameters, checks
// the result statically (kinds, fields, names, duplicates, references,
// cycles, the spec checks admission makes without the store), orders the
// resources by their dependencies, resolves ${Kind/name.path} references
// and compares desired specs with live objects (Diff, Plan).
//
// The CLI uses it to render and plan; the stack controller uses it to
// check, order, resolve and detect drift.
package stack

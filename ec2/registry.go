package ec2

import (
	"fmt"
	"maps"
	"slices"
)

// Action is one operation of a service.
type Action struct {
	// Name is the Action parameter ("RunInstances").
	Name string
	// Params are the parameters the action accepts, as patterns whose
	// "N" segments are list indexes ("InstanceId.N", "Filter.N.Value.N");
	// any other parameter is refused before the action runs.
	Params []string
	// Run does the action and returns the answer: a struct embedding
	// Response (EC2) or ResponseMetadata (STS), marshalled as
	// <NameResponse>.
	Run func(c *Call) (any, error)
}

// service is one API served at the endpoint, told apart by Version.
type service struct {
	name, version, namespace string
	actions                  map[string]Action
}

var (
	ec2API = &service{name: "ec2", version: EC2Version, namespace: EC2Namespace, actions: map[string]Action{}}
	stsAPI = &service{name: "sts", version: STSVersion, namespace: STSNamespace, actions: map[string]Action{}}
)

// register adds actions to svc; a name registered twice is a
// programming error. Each resource family's file registers its actions
// from an init function.
func register(svc *service, actions ...Action) {
	for _, a := range actions {
		if _, dup := svc.actions[a.Name]; dup {
			panic(fmt.Sprintf("ec2: action %s registered twice", a.Name))
		}
		if a.Run == nil {
			panic(fmt.Sprintf("ec2: action %s has no Run", a.Name))
		}
		svc.actions[a.Name] = a
	}
}

// Actions returns the names of the EC2 actions served, sorted (for
// docs and tests).
func Actions() []string { return slices.Sorted(maps.Keys(ec2API.actions)) }

// Common parameter patterns.
var (
	dryRun  = []string{"DryRun"}
	filters = []string{"Filter.N.Name", "Filter.N.Value.N"}
	paging  = []string{"MaxResults", "NextToken"}
)

// params joins parameter pattern lists.
func params(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

package admission

import (
	"encoding/json"
	"fmt"

	"github.com/ouroboros-cloud/ouro/api"
)

// This file holds the checks admission makes without the store, for
// callers that check objects before sending them (stack files). Each
// works on a copy: the argument is never modified.

// deepCopy returns a copy of v through JSON.
func deepCopy[T any](v T) (T, error) {
	var out T
	b, err := json.Marshal(v)
	if err != nil {
		return out, fmt.Errorf("copy: %w", err)
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return out, fmt.Errorf("copy: %w", err)
	}
	return out, nil
}

// CheckLoadBalancerSpec makes the checks of ValidateLoadBalancerCreate
// that need no store: the number of hosts, the drain timeout, the pools'
// names, members' form, weights and health monitors, and the listeners.
// Whether the network, the floating IP pool and the members exist, and
// whether a VIP asked for is an address of the network, need the store.
func CheckLoadBalancerSpec(in api.LoadBalancerSpec) error {
	spec, err := deepCopy(in)
	if err != nil {
		return err
	}
	if spec.Hosts != 0 && (spec.Hosts < 1 || spec.Hosts > maxLBHosts) {
		return api.Invalid("spec.hosts", "use 1, or 2 for active/standby on two hosts", "%d hosts is not valid", spec.Hosts)
	}
	return checkLoadBalancerSpec(&spec, nil)
}

// checkLoadBalancerSpec checks and defaults in place the parts of spec
// that need no store: the drain timeout, the pools and the listeners.
// members, if not nil, is called on each pool once it is checked, for
// the checks of its members that need the store; f is the pool's field.
func checkLoadBalancerSpec(spec *api.LoadBalancerSpec, members func(f string, p *api.Pool) error) error {
	if spec.DrainTimeoutSeconds < 0 || spec.DrainTimeoutSeconds > maxDrainTimeoutSeconds {
		return api.Invalid("spec.drainTimeoutSeconds", fmt.Sprintf("use 1 to %d, or leave it out for %d", maxDrainTimeoutSeconds, DefaultDrainTimeoutSeconds),
			"%d is out of range", spec.DrainTimeoutSeconds)
	}
	if len(spec.Pools) > maxPools {
		return api.Invalid("spec.pools", fmt.Sprintf("use at most %d pools", maxPools), "%d pools given", len(spec.Pools))
	}
	pools := map[string]int{}
	for i := range spec.Pools {
		p := &spec.Pools[i]
		f := fmt.Sprintf("spec.pools[%d]", i)
		if e := api.ValidateName(f+".name", p.Name); e != nil {
			return e
		}
		if j, ok := pools[p.Name]; ok {
			return api.Invalid(f+".name", "give every pool its own name", "pool %q is already spec.pools[%d]", p.Name, j)
		}
		pools[p.Name] = i
		if err := validatePool(f, p); err != nil {
			return err
		}
		if members != nil {
			if err := members(f, p); err != nil {
				return err
			}
		}
	}
	return validateListeners(spec.Listeners, pools)
}

// CheckInstanceSpec makes the checks of ValidateInstanceCreate that need
// no store: the names of the flavor, the command, environment, restart
// policy, placement, health check and user data. Whether the flavor,
// image, networks and key pair exist needs the store.
func CheckInstanceSpec(in api.InstanceSpec) error {
	spec, err := deepCopy(in)
	if err != nil {
		return err
	}
	if e := api.ValidateName("spec.flavor", spec.Flavor); e != nil {
		return e
	}
	if spec.PowerState == "" {
		spec.PowerState = api.PowerOn
	}
	if err := validateInstanceSpec(&api.Instance{Spec: spec}); err != nil {
		return err
	}
	return validateUserData("spec.userData", spec.UserData)
}

// CheckGroupSpec makes the checks of ValidateGroup on a new group that
// need no store: the count, placement, health check, update policy and
// autoscaling bounds, and the template's flavor name, command,
// environment and user data.
func CheckGroupSpec(in api.InstanceGroupSpec) error {
	spec, err := deepCopy(in)
	if err != nil {
		return err
	}
	if err := validateGroupSpec(&spec); err != nil {
		return err
	}
	t := spec.Template
	if e := api.ValidateName("spec.template.flavor", t.Flavor); e != nil {
		return e
	}
	if err := ValidateArgs("spec.template.command", t.Command); err != nil {
		return err
	}
	if err := ValidateEnv("spec.template.env", t.Env); err != nil {
		return err
	}
	return validateUserData("spec.template.userData", t.UserData)
}

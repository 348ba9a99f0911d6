package netplane

import "fmt"

// NetworkError is the failure of one network of a spec, which did not
// stop Apply from realising the others: the instances on the other
// networks have their ports.
type NetworkError struct {
	// UID and Name are the network's (HostNetworkEntry.UID and Name).
	UID  string
	Name string
	VNI  int
	Err  error
}

func (e *NetworkError) Error() string {
	return fmt.Sprintf("network %s (%s, vni %d): %v", e.Name, e.UID, e.VNI, e.Err)
}

func (e *NetworkError) Unwrap() error { return e.Err }

// NetworkUID returns the UID of the network that failed; callers that
// do not import this package find network failures by this method.
func (e *NetworkError) NetworkUID() string { return e.UID }

package api

import "time"

// Event types.
const (
	EventNormal  = "Normal"
	EventWarning = "Warning"
)

// Event records something that happened to an object. Events expire after
// a retention period (one hour by default).
type Event struct {
	Kind     string     `json:"kind"`
	Metadata ObjectMeta `json:"metadata"`
	// Object the event is about.
	Object  ObjectRef `json:"object"`
	Type    string    `json:"type"`
	Reason  string    `json:"reason"`
	Message string    `json:"message"`
	// Source is the component that saw it: "scheduler", "agent/host-1", ...
	Source string    `json:"source"`
	Time   time.Time `json:"time"`
	// Count is how many times it happened since the last event about the
	// same object with the same type, reason and message was recorded,
	// this time included (repeats are counted rather than recorded one
	// by one, see package record/correlate). Zero means once.
	Count int32 `json:"count,omitempty"`
}

// Meta returns the event's metadata.
func (o *Event) Meta() *ObjectMeta { return &o.Metadata }

// GetKind returns EventKind.
func (o *Event) GetKind() *Kind { return EventKind }

// The events timeline beside the map: a watch of the project's events,
// newest first, bounded.
export {};

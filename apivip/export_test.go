package apivip

// HandOffTargets is handOffTargets, for tests.
var HandOffTargets = handOffTargets

#!/usr/bin/env bash
# Runs every fuzz target of the module for a short while (FUZZTIME, default
# 50000 inputs each): the seeds committed beside each target run in
# `go test` too; this explores a little beyond them on every run of the suite.
#
# The budget is a count of inputs, not a duration: with a duration, Go's
# fuzzing coordinator can fail a target that found nothing with "context
# deadline exceeded" when its deadline fires (a race between the deadline
# context and its child; golang/go#75804, fixed in Go 1.27). A count has no
# deadline to race, and does the same work on a slow machine as on a fast one.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-50000x}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r file; do
	dir=$(dirname "$file")
	for target in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$file"); do
		echo "fuzz $dir $target ($FUZZTIME)"
		"$GO" test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$dir" >"$log" 2>&1 || {
			cat "$log"
			exit 1
		}
	done
done

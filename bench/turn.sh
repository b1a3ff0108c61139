#!/bin/sh
# Lab benchmark of `natcheck turn` (root; see docs/lab.md for the lab): at
# 50 ms round trip, natcheck turn vs coturn's turnutils_uclient doing the
# same checks (two allocations relaying 20 packets to each other) against
# coturn, 7 runs each, medians; then both against a silent server
# (natcheck bounded by --timeout 5s, turnutils_uclient stopped at 60 s).
# Takes about 3 minutes. Before natcheck has the turn command it measures
# turnutils_uclient only.
set -eu
cd "$(dirname "$0")/.."
NATCHECK_BENCH=1 exec go test -count=1 ./e2e -run 'TestTurnBench' -v -timeout 30m "$@"

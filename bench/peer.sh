#!/bin/sh
# Lab benchmark of `natcheck peer` (root; see docs/lab.md, "Two sites"):
# at 50 ms round trip between the sites (25 ms to the server), 10 runs of
#  - a direct pair (port-restricted x full-cone): time to connect after
#    both sides met (target 1.5 s);
#  - a failing pair (symmetric x symmetric): time to the failed outcome
#    after both sides met (target 5 s, the default --timeout);
#  - the direct pair through the rendezvous: the meeting's cost, in round
#    trips to the server (when natcheck serve has --rendezvous).
# Skips while natcheck has no peer command.
set -eu
cd "$(dirname "$0")/.."
NATCHECK_BENCH=1 exec go test -count=1 ./e2e -run 'TestPeerBench' -v -timeout 30m "$@"

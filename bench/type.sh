#!/bin/sh
# Lab benchmark of `natcheck type` (root; see docs/lab.md for the lab):
#  - speed: natcheck type vs the stun client against stund, alternately in
#    one lab at 50 ms round trip, 20 runs each;
#  - loss: 100 runs per topology at 10% loss each way and 50 ms round trip.
# Figures are written in docs/type-benchmark.md. Takes about 4 minutes.
# NATCHECK_BENCH_KIND=restricted-cone limits the loss runs to one topology.
set -eu
cd "$(dirname "$0")/.."
NATCHECK_BENCH=1 exec go test -count=1 ./e2e -run 'TestTypeBench' -v -timeout 30m "$@"

#!/bin/sh
# Lab benchmark of `natcheck peer` (root; see docs/lab.md, "Two sites"):
# at 50 ms round trip between the sites (25 ms to the server), 10 runs of
# a direct pair (port-restricted x full-cone) by tickets and through the
# rendezvous, a relayed pair (symmetric x symmetric, coturn on both sides)
# and a failing one (the same, no TURN); both sides timed from their own
# meeting to their outcome, and the rendezvous's round trips counted.
# Targets: direct within 1.5 s, failed within 5 s (the default --timeout).
# Results: docs/peer.md, "Timing".
set -eu
cd "$(dirname "$0")/.."
NATCHECK_BENCH=1 exec go test -count=1 ./e2e -run 'TestPeerBench' -v -timeout 30m "$@"

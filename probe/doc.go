// Package probe runs the NAT behaviour tests and combines their results:
// whoami, the RFC 5780 behaviour run (type), hairpinning, the TTL-limited
// path probe, server checks, IPv6 and the TCP mapping test.
//
// The flow is flags (cmd) -> probes -> observations -> verdict -> report:
//
//   - probe/stunclient sends the probes: STUN transactions over UDP and
//     TCP, and the server addresses they go to.
//   - probe/gather asks several servers at once and decides, by one
//     documented grace policy, how long a silent server may cost.
//   - probe (this package) runs the tests and gathers what they saw into
//     nat.Observations.
//   - probe/nat turns observations into a verdict, without I/O.
//   - probe/lifetime measures how long idle UDP mappings live.
//   - report renders the results.
package probe

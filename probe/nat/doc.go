// Package nat turns the observations of STUN behaviour tests into a verdict
// (mapping, filtering, NAT type and findings); it does no I/O.
package nat

// Package probe runs STUN transactions and NAT behaviour tests and turns their
// observations into verdicts.
package probe

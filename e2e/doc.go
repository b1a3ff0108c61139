// Package e2e runs the natcheck binary end to end in the NAT lab, against
// natcheck's own and third-party STUN servers.
package e2e

// Package stunclient runs STUN transactions: a UDP socket whose replies are
// routed by transaction ID and source address, with retransmission, and
// STUN over TCP. It also parses the STUN server addresses users give.
package stunclient

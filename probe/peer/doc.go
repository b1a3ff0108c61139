// Package peer tests a connection between two hosts with ICE (pion/ice) and explains its outcome against the prediction from both sides' NAT types.
package peer

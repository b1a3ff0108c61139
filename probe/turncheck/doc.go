// Package turncheck tests a TURN relay end to end with pion/turn: reach,
// authenticate, allocate, permit, bind a channel and carry data between two
// allocations, and names the cause of the first failure.
package turncheck

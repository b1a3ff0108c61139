// Package server is natcheck's RFC 5780 STUN server: request parsing, response building, listeners, rate limiting and metrics.
package server

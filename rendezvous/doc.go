// Package rendezvous lets two natcheck peers swap one small encrypted blob each through a natcheck serve, keyed by a short readable code.
package rendezvous

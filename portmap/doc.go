// Package portmap tests the gateway's port-mapping services (UPnP IGD, NAT-PMP, PCP) and deletes every mapping it makes.
package portmap

// Package lifetime measures how long a NAT keeps an idle UDP mapping.
package lifetime

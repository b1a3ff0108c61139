// Package report renders probe results as text for people, JSON for scripts
// and Markdown for tickets.
package report

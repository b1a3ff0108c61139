// Command natcheck diagnoses NAT traversal: it asks STUN servers which public
// address this host appears from and tells whether, and how, it is behind NAT.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/natcheck/natcheck/cmd"
	"github.com/natcheck/natcheck/probe/stunclient"
)

func main() {
	// Ctrl-C and SIGTERM cancel the context, so every probe stops at once
	// and the command exits with ExitInterrupted instead of a stack trace.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cmd.Execute(ctx, os.Args[1:], &cmd.Deps{
		In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr,
		Getenv: os.Getenv, DefaultServers: stunclient.DefaultServers,
	})
	stop()
	os.Exit(code)
}

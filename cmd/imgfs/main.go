// Command imgfs is the command line: its subcommands (mount, unmount, diff, commit, export, import,
// inspect) wire the packages together, and it runs the processes around a mount (the background
// daemon, the lock on an upper directory, the control socket a commit talks to). A mount shows a
// container image archive as its merged root filesystem, with nothing extracted.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newApp().RunContext(ctx, os.Args); err != nil {
		var ex exitError
		if errors.As(err, &ex) {
			os.Exit(ex.code)
		}
		fmt.Fprintf(os.Stderr, "imgfs: %v\n", err)
		os.Exit(1)
	}
}

// exitError ends the process with a code after its message was already printed.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

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
	"path/filepath"
	"syscall"

	"github.com/urfave/cli/v2"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// As mount(8)'s helper, the arguments become imgfs mount's; the daemon a mount spawns runs with
	// those already (os.Args), whatever name the executable has.
	if filepath.Base(os.Args[0]) == mountHelperName && os.Getenv(daemonEnv) == "" {
		args, err := mountHelperArgs(os.Args[1:])
		if err != nil {
			fmt.Fprintf(os.Stderr, "imgfs: %v\n", err)
			os.Exit(exitUsage)
		}
		os.Args = args
	}
	if err := newApp().RunContext(ctx, os.Args); err != nil {
		code := exitCode(err)
		var ex exitError
		if !errors.As(err, &ex) {
			fmt.Fprintf(os.Stderr, "imgfs: %v\n", err)
		}
		os.Exit(code)
	}
}

// Exit statuses (README: Exit status and output): 0 success, 1 failure, 2 usage error (bad flag,
// argument or command). which is the one exception, as grep: 0 found, 1 not found, 2 trouble.
const (
	exitFailure = 1
	exitUsage   = 2
)

// exitCode is the exit status of a command that returned err.
func exitCode(err error) int {
	var ex exitError
	var ue usageErr
	var ce cli.ExitCoder
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ex):
		return ex.code
	case errors.As(err, &ue), errors.As(err, &ce): // cli's own: an unknown command
		return exitUsage
	}
	return exitFailure
}

// usageErr marks an error in how a command was called (exit status 2).
type usageErr struct{ error }

func (e usageErr) Unwrap() error { return e.error }

// exitError ends the process with a code after its message was already printed.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

package main

import (
	"fmt"
	"os"
	"syscall"

	"github.com/imgfs/imgfs/internal/atomicfile"
)

// atomicFile is an output that appears at its target only once complete.
type atomicFile = atomicfile.File

// createAtomic creates an output written to a temporary file beside target and renamed into place
// only by Commit, so an error or a crash never leaves a half-written target.
func createAtomic(target string) (*atomicFile, error) {
	f, err := atomicfile.Create(target, "")
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", target, err)
	}
	// CreateTemp makes 0600 files; the output is an ordinary file, 0666 less the umask.
	mask := syscall.Umask(0)
	syscall.Umask(mask)
	if err := f.Chmod(0o666 &^ os.FileMode(mask)); err != nil {
		f.Abort()
		return nil, fmt.Errorf("creating %s: %w", target, err)
	}
	return f, nil
}

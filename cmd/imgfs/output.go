package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"syscall"

	"github.com/imgfs/imgfs/imagewrite"
	"github.com/imgfs/imgfs/internal/atomicfile"
)

// atomicFile is an output written to a temporary file beside its target and renamed into place only
// when complete (atomicfile), so an error or a crash never leaves a half-written target. The temporary
// is imagewrite's (locked while written), so one a SIGKILL left is reclaimed by the next write to target.
type atomicFile struct {
	*atomicfile.File
	target string
}

func createAtomic(target string, log *slog.Logger) (*atomicFile, error) {
	tmp, err := imagewrite.CreateTemp(target, log)
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", target, err)
	}
	f := atomicfile.Wrap(tmp, target)
	// CreateTemp makes 0600 files; the output is an ordinary file, 0666 less the umask.
	mask := syscall.Umask(0)
	syscall.Umask(mask)
	if err := f.Chmod(0o666 &^ os.FileMode(mask)); err != nil {
		f.Abort()
		return nil, fmt.Errorf("creating %s: %w", target, err)
	}
	return &atomicFile{File: f, target: target}, nil
}

// Write writes to the temporary; an error names the target, which the user knows, not the temporary.
func (a *atomicFile) Write(p []byte) (int, error) {
	n, err := a.File.Write(p)
	if pe, ok := errors.AsType[*fs.PathError](err); ok && pe.Path == a.File.Name() {
		err = &fs.PathError{Op: pe.Op, Path: a.target, Err: pe.Err}
	}
	return n, err
}

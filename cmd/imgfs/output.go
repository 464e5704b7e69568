package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"

	"github.com/imgfs/imgfs/imagewrite"
)

// atomicFile is an output written to a temporary file beside its target and renamed into place only
// when complete, so an error or a crash never leaves a half-written target. The temporary is
// imagewrite's (locked while written), so one a SIGKILL left is reclaimed by the next write to target.
type atomicFile struct {
	*os.File
	target string
	done   bool
}

func createAtomic(target string, log *slog.Logger) (*atomicFile, error) {
	f, err := imagewrite.CreateTemp(target, log)
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", target, err)
	}
	// CreateTemp makes 0600 files; the output is an ordinary file, 0666 less the umask.
	mask := syscall.Umask(0)
	syscall.Umask(mask)
	if err := f.Chmod(0o666 &^ os.FileMode(mask)); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("creating %s: %w", target, err)
	}
	return &atomicFile{File: f, target: target}, nil
}

// Commit syncs the file and renames it over the target.
func (a *atomicFile) Commit() error {
	if err := a.File.Sync(); err != nil {
		a.Abort()
		return fmt.Errorf("writing %s: %w", a.target, err)
	}
	// Renamed while still open, so locked: no reclaim by another write to target can take it.
	if err := os.Rename(a.File.Name(), a.target); err != nil {
		a.Abort()
		return fmt.Errorf("writing %s: %w", a.target, err)
	}
	a.done = true
	if err := a.File.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", a.target, err)
	}
	if d, err := os.Open(filepath.Dir(a.target)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Write writes to the temporary; an error names the target, which the user knows, not the temporary.
func (a *atomicFile) Write(p []byte) (int, error) {
	n, err := a.File.Write(p)
	if pe, ok := errors.AsType[*fs.PathError](err); ok && pe.Path == a.File.Name() {
		err = &fs.PathError{Op: pe.Op, Path: a.target, Err: pe.Err}
	}
	return n, err
}

// Abort removes the temporary file; after Commit it does nothing.
func (a *atomicFile) Abort() {
	if a.done {
		return
	}
	a.done = true
	a.File.Close()
	os.Remove(a.File.Name())
}

// Package atomicfile writes a file so that its path names either what was there or the complete new
// content, never a part of it, even across a crash: the content goes to a temporary file beside the
// path, which is synced, renamed over the path, and then the directory is synced. It is the one
// implementation of that rule in the module; it imports nothing of the module.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// File is an output being written under a temporary name beside its path. It is an *os.File; Commit
// puts it in place, Abort removes it.
type File struct {
	*os.File
	path string
	done bool
}

// Create makes a temporary file (mode 0600) in path's directory, named from pattern as os.CreateTemp
// names it. A pattern of "" gives "."+base(path)+".tmp-*".
func Create(path, pattern string) (*File, error) {
	if pattern == "" {
		pattern = "." + filepath.Base(path) + ".tmp-*"
	}
	f, err := os.CreateTemp(filepath.Dir(path), pattern)
	if err != nil {
		return nil, err
	}
	return &File{File: f, path: path}, nil
}

// Wrap makes tmp, a temporary file its caller created in path's directory (with a lock or a name of
// its own), an output that Commit puts at path.
func Wrap(tmp *os.File, path string) *File { return &File{File: tmp, path: path} }

// Commit syncs the file, renames it over its path while it is still open (a lock the caller holds on it
// lasts until it is in place; see Rename), and closes it. On an error the temporary file is removed and
// the path is as it was.
func (f *File) Commit() error {
	if f.done {
		return fmt.Errorf("writing %s: %w", f.path, os.ErrClosed)
	}
	f.done = true
	err := f.File.Sync()
	if err == nil {
		err = rename(f.File.Name(), f.path)
		if cerr := f.File.Close(); err == nil {
			err = cerr
		}
	} else {
		f.File.Close()
	}
	if err != nil {
		os.Remove(f.File.Name())
		return fmt.Errorf("writing %s: %w", f.path, err)
	}
	return nil
}

// Abort closes and removes the temporary file; after Commit (or a second Abort) it does nothing.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.File.Close()
	os.Remove(f.File.Name())
}

// Rename puts tmp, a complete temporary file in path's directory, in place at path and leaves it open
// (for a caller that goes on reading or mapping it): tmp is synced and renamed over path, and path's
// directory is synced. On an error tmp keeps its name (the caller removes it) and path is as it was.
func Rename(tmp *os.File, path string) error {
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// rename renames tmp to path and syncs path's directory, so that the rename survives a crash. That
// sync is best effort: once the rename is done the path holds the complete new content whatever
// happens, and some file systems refuse to sync a directory.
func rename(tmp, path string) error {
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	SyncDir(filepath.Dir(path))
	return nil
}

// SyncDir syncs directory dir, so that the entries made or renamed in it are durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

package main

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// An upper directory is locked with flock(2) on a descriptor of the directory itself: a writable mount
// holds LOCK_EX for its whole life, a commit of a directory no mount serves holds LOCK_SH while it reads.
// The lock belongs to the inode, so a bind mount or any other alias of the directory meets the same
// lock, two mounts started at the same instant cannot both get it, and the kernel drops it when the
// holder dies. Nothing is written into the directory for it, so it stays a valid overlayfs upper dir.

// dirID is the identity of a directory: its device and inode, the same through every path to it.
type dirID struct{ dev, ino uint64 }

func (id dirID) String() string { return fmt.Sprintf("%x-%x", id.dev, id.ino) }

// upperLock is a held lock of an upper directory.
type upperLock struct {
	f  *os.File
	id dirID
}

// Close releases the lock.
func (l *upperLock) Close() error { return l.f.Close() }

// errUpperBusy means another process (a writable mount, or a commit) holds the directory's lock.
var errUpperBusy = errors.New("in use by another mount or a commit")

// lockUpper locks upper directory dir for a writable mount (exclusive), creating it when missing.
func lockUpper(dir string) (*upperLock, error) {
	if _, err := os.Stat(dir); errors.Is(err, unix.ENOTCONN) {
		return nil, deadMountError(dir, errors.Unwrap(err))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("upper directory %s: %w", dir, errors.Unwrap(err))
	}
	return flockDir(dir, unix.LOCK_EX)
}

// lockUpperShared locks upper directory dir for reading while no mount serves it (errUpperBusy when
// one does).
func lockUpperShared(dir string) (*upperLock, error) { return flockDir(dir, unix.LOCK_SH) }

func flockDir(dir string, how int) (*upperLock, error) {
	f, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOTCONN) {
		return nil, deadMountError(dir, errors.Unwrap(err))
	}
	if err != nil {
		return nil, fmt.Errorf("upper directory %s: %w", dir, errors.Unwrap(err))
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("upper directory %s: %w", dir, err)
	}
	id := dirID{dev: st.Dev, ino: st.Ino}
	for {
		err = unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, errUpperBusy
		}
		return nil, fmt.Errorf("upper directory %s: locking: %w", dir, err)
	}
	return &upperLock{f: f, id: id}, nil
}

// upperDirID returns the identity of directory dir.
func upperDirID(dir string) (dirID, error) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return dirID{}, fmt.Errorf("upper directory %s: %w", dir, err)
	}
	return dirID{dev: st.Dev, ino: st.Ino}, nil
}

package cache

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Lease is a shared hold on a key: while it is held, no prune removes the key's files.
type Lease struct{ f *os.File }

// Close releases the lease.
func (l *Lease) Close() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// Lock takes a shared lease on key, waiting while a prune removes it.
func Lock(dir, key string) (*Lease, error) {
	if !validKey(key) {
		return nil, fmt.Errorf("cache: invalid key %q", key)
	}
	f, err := lockFile(dir, key, unix.LOCK_SH)
	if err != nil {
		return nil, err
	}
	return &Lease{f: f}, nil
}

// tryExclusive takes key's lock exclusively without waiting; busy is true when someone holds it.
func tryExclusive(dir, key string) (f *os.File, busy bool, err error) {
	f, err = lockFile(dir, key, unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return nil, true, nil
	}
	return f, false, err
}

// lockFile opens (creating) key's lock file and flocks it with how. A prune removes the lock file of
// a key it removed while holding it, so a lock taken on a file that is no longer at the path is
// retried on the new one.
func lockFile(dir, key string, how int) (*os.File, error) {
	p := lockPath(dir, key)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, fmt.Errorf("cache lock %s: %w", p, err)
	}
	for {
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("cache lock %s: %w", p, err)
		}
		if err := flock(f, how); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, err
			}
			return nil, fmt.Errorf("cache lock %s: %w", p, err)
		}
		var held, now unix.Stat_t
		if unix.Fstat(int(f.Fd()), &held) == nil && unix.Stat(p, &now) == nil && held.Dev == now.Dev && held.Ino == now.Ino {
			return f, nil
		}
		f.Close() // removed or replaced by a prune while we waited
	}
}

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			return err
		}
	}
}

// InUse reports whether a live process holds key's lease (a probe: it takes the lock exclusively
// without waiting and lets it go at once; a user starting meanwhile waits that long).
func InUse(dir, key string) bool {
	f, err := os.OpenFile(lockPath(dir, key), os.O_RDWR, 0)
	if err != nil {
		return false // no lock file: nobody took the lease since the key was pruned or built
	}
	defer f.Close()
	return errors.Is(flock(f, unix.LOCK_EX|unix.LOCK_NB), unix.EWOULDBLOCK)
}

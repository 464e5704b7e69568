package index

import (
	"os"

	"golang.org/x/sys/unix"
)

// mapFile maps size bytes of f read-only. The pages are not populated: they come in as the mount
// reads them (its checksum is read from the file, not through the mapping), so that a million-entry
// table does not add its size to the resident memory of a mount that has only just been indexed.
func mapFile(f *os.File, size int64) ([]byte, func() error, error) {
	b, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, nil, err
	}
	return b, func() error { return unix.Munmap(b) }, nil
}

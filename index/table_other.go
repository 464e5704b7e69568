//go:build !linux

package index

import (
	"io"
	"os"
)

// mapFile reads size bytes of f into memory (tables are only mapped on Linux).
func mapFile(f *os.File, size int64) ([]byte, func() error, error) {
	b := make([]byte, size)
	if _, err := io.ReadFull(io.NewSectionReader(f, 0, size), b); err != nil {
		return nil, nil, err
	}
	return b, func() error { return nil }, nil
}

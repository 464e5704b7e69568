//go:build !linux

package index

import (
	"fmt"
	"os"
	"time"
)

// sourceStamp is the size and mtime of the archive file behind a layer when it was opened, as far as
// the portable FileInfo gives them (on Linux, source_linux.go also compares ctime, which a writer
// cannot set back).
type sourceStamp struct {
	f     *os.File
	size  int64
	mtime time.Time
}

func stampOf(f *os.File) sourceStamp {
	if f == nil {
		return sourceStamp{}
	}
	fi, err := f.Stat()
	if err != nil {
		return sourceStamp{}
	}
	return sourceStamp{f: f, size: fi.Size(), mtime: fi.ModTime()}
}

// check returns ErrSourceChanged when the file's size or mtime is no longer the one taken at open.
func (s sourceStamp) check() error {
	if s.f == nil {
		return nil
	}
	fi, err := s.f.Stat()
	if err != nil {
		return fmt.Errorf("%s: %w", s.f.Name(), err)
	}
	if fi.Size() != s.size || !fi.ModTime().Equal(s.mtime) {
		return fmt.Errorf("%s: %w", s.f.Name(), ErrSourceChanged)
	}
	return nil
}

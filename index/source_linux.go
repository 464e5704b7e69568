package index

import (
	"fmt"
	"os"
	"syscall"
)

// sourceStamp is the size, mtime, ctime and link count of the archive file behind a layer when it was
// opened. Any write or truncation changes its mtime and ctime (which a writer cannot set back) before
// its bytes. A file deleted, renamed over or linked elsewhere keeps its bytes behind the open
// descriptor: its ctime moves with its link count, and that alone is not a change.
type sourceStamp struct {
	f            *os.File
	size         int64
	mtime, ctime syscall.Timespec
	nlink        uint64
}

func stampOf(f *os.File) sourceStamp {
	var st syscall.Stat_t
	if f == nil || syscall.Fstat(int(f.Fd()), &st) != nil {
		return sourceStamp{}
	}
	return sourceStamp{f: f, size: st.Size, mtime: st.Mtim, ctime: st.Ctim, nlink: uint64(st.Nlink)}
}

// check returns ErrSourceChanged when the file's stamp is no longer the one taken at open.
func (s sourceStamp) check() error {
	if s.f == nil {
		return nil
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(s.f.Fd()), &st); err != nil {
		return fmt.Errorf("%s: %w", s.f.Name(), err)
	}
	if st.Size != s.size || st.Mtim != s.mtime || st.Ctim != s.ctime && uint64(st.Nlink) == s.nlink {
		return fmt.Errorf("%s: %w", s.f.Name(), ErrSourceChanged)
	}
	return nil
}

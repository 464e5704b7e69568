package compression

import (
	"fmt"
	"os"
	"syscall"
)

// statIdentity describes the file behind fi: device, inode, size, mtime and (withCtime) ctime. Any
// write to the file changes its mtime and ctime; a ctime cannot be set back by the writer.
func statIdentity(fi os.FileInfo, withCtime bool) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Sprintf("size=%d mtime=%d", fi.Size(), fi.ModTime().UnixNano())
	}
	s := fmt.Sprintf("dev=%d ino=%d size=%d mtime=%d.%09d", st.Dev, st.Ino, st.Size, st.Mtim.Sec, st.Mtim.Nsec)
	if withCtime {
		s += fmt.Sprintf(" ctime=%d.%09d", st.Ctim.Sec, st.Ctim.Nsec)
	}
	return s
}

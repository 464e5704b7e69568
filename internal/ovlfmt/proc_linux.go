package ovlfmt

import (
	"errors"
	"fmt"
	"strconv"

	"golang.org/x/sys/unix"
)

// ProcFD names descriptor fd through /proc: the l*xattr calls on ProcFD(dir)+"/"+name resolve that one
// name in the open directory without following it, and xattr calls on ProcFD(fd) reach the very file.
func ProcFD(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// CheckProc makes sure that /proc/self/fd, through which the xattrs of an upper directory's entries
// are read, is there and is ours: ProcFD(fd) must be directory fd, opened from path.
func CheckProc(fd int, path string) error {
	var st, pst unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	if err := unix.Stat(ProcFD(fd), &pst); err != nil || pst.Dev != st.Dev || pst.Ino != st.Ino {
		return fmt.Errorf("reading upper directory %s needs /proc/self/fd: %w", path, errors.ErrUnsupported)
	}
	return nil
}

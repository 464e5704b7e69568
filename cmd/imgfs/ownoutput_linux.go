package main

import (
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// fuseSuperMagic is statfs's f_type of a FUSE file system.
const fuseSuperMagic = 0x65735546

// ownOutputSkip returns an ExportOptions.Skip that leaves out f, the file the export is writing, when f
// lies inside a FUSE mount (a mount of the very view being exported, typically): the member whose name
// is f's path below that mount, when that path still names f (same device and inode), as GNU tar skips
// its own archive. It returns nil when f is not a regular file on a FUSE mount.
func ownOutputSkip(f *os.File) func(name string) bool {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil
	}
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &sfs); err != nil || sfs.Type != fuseSuperMagic {
		return nil
	}
	p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
	if err != nil || !filepath.IsAbs(p) {
		return nil
	}
	// The mount's root is the highest ancestor on f's device.
	root := filepath.Dir(p)
	for root != "/" {
		var pst unix.Stat_t
		if err := unix.Stat(filepath.Dir(root), &pst); err != nil || pst.Dev != st.Dev {
			break
		}
		root = filepath.Dir(root)
	}
	rel, err := filepath.Rel(root, p)
	if err != nil || !filepath.IsLocal(rel) {
		return nil
	}
	return func(name string) bool {
		if name != rel {
			return false
		}
		var cur unix.Stat_t
		return unix.Lstat(filepath.Join(root, name), &cur) == nil && cur.Dev == st.Dev && cur.Ino == st.Ino
	}
}

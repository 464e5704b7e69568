package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// The file system type and source name an imgfs mount has in /proc/self/mountinfo (see fs.mountOptions:
// Name "imgfs", FsName "imgfs:ARCHIVE").
const (
	imgfsFsType       = "fuse.imgfs"
	imgfsSourcePrefix = "imgfs"
)

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	point  string // the mount point, unescaped
	fstype string // e.g. fuse.imgfs, tmpfs
	source string // e.g. imgfs:/images/x.tar
}

// isImgfs reports whether the entry is a mount of imgfs (by its file system type, or for a kernel that
// knows no FUSE subtypes, by the source name imgfs gives its mounts).
func (e mountEntry) isImgfs() bool {
	return e.fstype == imgfsFsType || (e.fstype == "fuse" && strings.HasPrefix(e.source, imgfsSourcePrefix))
}

func (e mountEntry) String() string { return e.fstype + " " + e.source }

// resolveMountpoint returns dir as an absolute path without symlinks. The last element is not resolved
// through stat (a dead FUSE mount answers ENOTCONN to it); only a symlink is followed.
func resolveMountpoint(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	parent, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if err != nil {
		return "", err
	}
	p := filepath.Join(parent, filepath.Base(abs))
	if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return filepath.EvalSymlinks(p)
	}
	return p, nil
}

// mountAt returns the topmost mount whose mount point is the absolute path dir, if any.
func mountAt(dir string) (mountEntry, bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return mountEntry{}, false, fmt.Errorf("reading the mount table: %w", err)
	}
	defer f.Close()
	var found mountEntry
	ok := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		e, valid := parseMountinfo(sc.Text())
		if valid && e.point == dir {
			// Later lines are mounted on top of earlier ones.
			found, ok = e, true
		}
	}
	if err := sc.Err(); err != nil {
		return mountEntry{}, false, fmt.Errorf("reading the mount table: %w", err)
	}
	return found, ok, nil
}

// parseMountinfo parses one mountinfo line: "36 35 98:0 /root /mnt opts [optional...] - fstype source super".
func parseMountinfo(line string) (mountEntry, bool) {
	f := strings.Fields(line)
	sep := -1
	for i := 6; i < len(f); i++ {
		if f[i] == "-" {
			sep = i
			break
		}
	}
	if len(f) < 5 || sep < 0 || sep+2 >= len(f) {
		return mountEntry{}, false
	}
	return mountEntry{point: unescapeMountinfo(f[4]), fstype: unescapeMountinfo(f[sep+1]), source: unescapeMountinfo(f[sep+2])}, true
}

// unescapeMountinfo undoes the kernel's octal escapes (\040 for a space, \011, \012, \134).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1:i+4]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if s[i] < '0' || s[i] > '7' {
			return false
		}
	}
	return true
}

// checkMountTarget refuses a mount point that already has a file system mounted on it. A dead imgfs
// mount (its daemon was killed) is detached, so that mounting again just works; a dead mount of another
// file system is left alone. It returns a note for the user when it cleaned something up.
func checkMountTarget(dir string) (note string, err error) {
	abs, err := resolveMountpoint(dir)
	if err != nil {
		return "", fmt.Errorf("mountpoint %s: %w", dir, unwrapPath(err))
	}
	// Dead imgfs mounts may be stacked (older versions mounted over them): detach each.
	detached := 0
	for {
		e, mounted, err := mountAt(abs)
		if err != nil {
			return "", fmt.Errorf("mountpoint %s: %w", dir, err)
		}
		// statfs always asks the daemon (stat may be answered from the kernel's attribute cache).
		var sfs unix.Statfs_t
		dead := errors.Is(unix.Statfs(abs, &sfs), unix.ENOTCONN)
		cleanup, err := mountTargetVerdict(dir, abs, e, mounted, dead)
		if err != nil || !cleanup {
			if err == nil && detached > 0 {
				note = fmt.Sprintf("mountpoint %s: detached %d dead imgfs mount(s) (their daemon had exited)", dir, detached)
			}
			return note, err
		}
		if detached == 16 {
			return "", fmt.Errorf("mountpoint %s: dead imgfs mounts remain after 16 lazy unmounts", dir)
		}
		if err := unmount(abs, true); err != nil {
			return "", fmt.Errorf("mountpoint %s: a dead imgfs mount (its daemon is gone) could not be cleaned up: %w", dir, err)
		}
		detached++
	}
}

// mountTargetVerdict decides about a mount point (dir as given, abs resolved) from what is mounted there
// (e, when mounted) and whether the kernel answers ENOTCONN there: fine, clean up (a dead imgfs mount),
// or an error saying why not and what to do.
func mountTargetVerdict(dir, abs string, e mountEntry, mounted, dead bool) (cleanup bool, err error) {
	switch {
	case !mounted && dead:
		return false, fmt.Errorf("mountpoint %s: inside a dead FUSE mount (transport endpoint is not connected); unmount that first", dir)
	case !mounted:
		return false, nil
	case dead && e.isImgfs():
		return true, nil
	case dead:
		return false, fmt.Errorf("mountpoint %s: a dead %s mount (%s) is there; imgfs leaves it alone: 'umount -l %s' removes it", dir, e.fstype, e.source, abs)
	case e.isImgfs():
		return false, fmt.Errorf("mountpoint %s: already an imgfs mount (of %s); 'imgfs unmount %s' first", dir, strings.TrimPrefix(e.source, imgfsSourcePrefix+":"), dir)
	default:
		return false, fmt.Errorf("mountpoint %s: already a mount point (%s %s); imgfs does not mount over another file system", dir, e.fstype, e.source)
	}
}

// checkUnmountTarget returns the resolved mount point of dir when an imgfs file system is mounted
// there, and a clear error otherwise (not mounted, or another file system that imgfs must not touch).
func checkUnmountTarget(dir string) (string, error) {
	abs, err := resolveMountpoint(dir)
	if err != nil {
		return "", fmt.Errorf("unmount %s: %w", dir, unwrapPath(err))
	}
	e, mounted, err := mountAt(abs)
	if err != nil {
		return "", fmt.Errorf("unmount %s: %w", dir, err)
	}
	if !mounted {
		if _, err := os.Lstat(abs); err != nil && !errors.Is(err, unix.ENOTCONN) {
			return "", fmt.Errorf("unmount %s: %w", dir, unwrapPath(err))
		}
		return "", fmt.Errorf("unmount %s: not mounted", dir)
	}
	if !e.isImgfs() {
		return "", fmt.Errorf("unmount %s: not an imgfs mount (%s %s); imgfs unmounts only its own mounts, use umount", dir, e.fstype, e.source)
	}
	return abs, nil
}

// unwrapPath drops the *PathError wrapper (its path is named by the caller already).
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

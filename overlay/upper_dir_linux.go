package overlay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/imgfs/imgfs/internal/ovlfmt"
	"golang.org/x/sys/unix"
)

// upperFS makes every system call on the upper directory. Paths are resolved beneath its root with
// openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS|RESOLVE_NO_XDEV), and entries are
// then named one component at a time relative to a directory descriptor opened that way, with the *at
// calls and their no-follow flags: no symlink in the upper directory (or a path of the image) ever makes
// imgfs touch anything outside it.
type upperFS struct {
	dir    string // the upper directory, for messages
	root   int    // its descriptor (O_RDONLY|O_DIRECTORY)
	ns     string // namespace of the overlayfs markers written: "trusted." or "user."
	priv   bool   // the process may set trusted.* xattrs (and so, in practice, chown)
	xwh    bool   // whiteouts are written as xattr-marked empty files (mknod of 0/0 is refused)
	ro     bool   // opened read-only: the view over it refuses every change
	closed atomic.Bool
	tmpSeq atomic.Uint64

	// work holds every entry being made (temporaries, named tmpPrefix...) until it is renamed into
	// place: a directory on the same mount but outside the upper directory's tree, so that neither a
	// crash nor the kernel's overlayfs ever shows one in the tree (see openWork); -1 when read-only.
	work     int
	workPath string // for messages and removal
	workIn   bool   // the work directory is inside the upper directory (its parent was unusable)
}

// resolveBeneath are the openat2 resolve flags of every path in the upper directory.
const resolveBeneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV

// Marker xattrs, without their namespace prefix (named by ovlfmt, the one reader of the format).
const (
	xOpaque    = ovlfmt.Opaque
	xWhiteout  = ovlfmt.Whiteout
	xWhiteouts = ovlfmt.Whiteouts
	xBase      = ovlfmt.Base
)

// tmpPrefix starts the names of entries being made. They are made in the work directory, not in the
// upper directory; every upperDirFD call on such a name goes there. It is a whiteout name, which the view
// never lists or finds and users may not create.
const tmpPrefix = ".wh..wh..imgfs."

// workSuffix names the work directory beside the upper directory DIR: DIR's parent/.NAME.imgfs-work.
// workInName names it inside DIR when DIR's parent is unusable (read-only, another mount): an AUFS
// metadata name, which the view and diff hide, though the kernel's overlayfs shows it while it exists.
const (
	workSuffix = ".imgfs-work"
	workInName = ".wh..wh.imgfs-work"
)

// upperMarkers force the form of the markers a new upper directory gets (set by tests, through
// UpperOptions): user makes OpenUpper write the userxattr markers even as root; xattrWhiteouts makes it
// write xattr whiteouts, as if mknod were refused.
type upperMarkers struct{ user, xattrWhiteouts bool }

// openUpperFS opens (creating when missing) upper directory dir, checks or records base, and chooses
// the form of the markers. fresh reports a directory that was empty and had no base recorded. With
// readOnly nothing is written: dir must exist and carry the record of base.
func openUpperFS(dir, base string, readOnly bool, force upperMarkers) (u *upperFS, fresh bool, err error) {
	if dir == "" {
		return nil, false, fmt.Errorf("overlay: upper directory not given: %w", ErrInvalid)
	}
	if !readOnly {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, false, fmt.Errorf("creating upper directory: %w", err)
		}
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, false, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	u = &upperFS{dir: dir, root: fd, ns: "trusted.", work: -1}
	ok := false
	defer func(u *upperFS) {
		if !ok {
			unix.Close(fd)
			if u.work >= 0 {
				unix.Close(u.work)
			}
		}
	}(u)
	if err := ovlfmt.CheckProc(fd, dir); err != nil {
		return nil, false, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, false, &os.PathError{Op: "stat", Path: dir, Err: err}
	}
	tb, tok, err := fdGetxattr(fd, "trusted."+xBase)
	if err != nil {
		return nil, false, &os.PathError{Op: "getxattr", Path: dir, Err: err}
	}
	ub, uok, err := fdGetxattr(fd, "user."+xBase)
	if err != nil && !errors.Is(err, unix.EOPNOTSUPP) {
		return nil, false, &os.PathError{Op: "getxattr", Path: dir, Err: err}
	}
	switch {
	case tok:
		if string(tb) != base {
			return nil, false, fmt.Errorf("upper directory %s was made over base %q, not %q (another image): %w", dir, tb, base, ErrInvalid)
		}
	case uok:
		if string(ub) != base {
			return nil, false, fmt.Errorf("upper directory %s was made over base %q, not %q (another image): %w", dir, ub, base, ErrInvalid)
		}
		u.ns = "user."
	case readOnly:
		return nil, false, fmt.Errorf("%s is not an imgfs upper directory (no base record); mount it with --upper first: %w",
			dir, ErrNotUpper)
	default:
		empty, err := dirEmpty(fd)
		if err != nil {
			return nil, false, &os.PathError{Op: "readdir", Path: dir, Err: err}
		}
		fresh = empty
		err = unix.EPERM
		if !force.user {
			err = unix.Fsetxattr(fd, "trusted."+xBase, []byte(base), 0)
		}
		if errors.Is(err, unix.EPERM) {
			u.ns = "user."
			err = unix.Fsetxattr(fd, "user."+xBase, []byte(base), 0)
		}
		if err != nil {
			return nil, false, &os.PathError{Op: "setxattr", Path: dir, Err: err}
		}
	}
	u.priv = u.ns == "trusted."
	if readOnly {
		u.ro = true
		ok = true
		return u, false, nil
	}
	if err := u.openWork(); err != nil {
		if !errors.Is(err, unix.ENOSPC) && !errors.Is(err, unix.EDQUOT) {
			return nil, false, err
		}
		// Out of inodes: still mount, so that files can be removed and the work saved by a commit;
		// entries made meanwhile (which need inodes anyway) are made beside their target.
		if u.work >= 0 {
			unix.Close(u.work)
		}
		u.work, u.workPath = -1, dir
	}
	// Since Linux 5.8 anyone may make a 0/0 character device (a whiteout), which overlayfs honours in
	// an upper directory in every mode; xattr whiteouts are the fallback.
	u.xwh = force.xattrWhiteouts
	if !u.xwh {
		tmp, at := u.tmpName(), u.work
		if at < 0 {
			at = fd
		}
		err := unix.Mknodat(at, tmp, unix.S_IFCHR, 0)
		switch {
		case err == nil:
			unix.Unlinkat(at, tmp, 0)
		case errors.Is(err, unix.EPERM):
			u.xwh = true
		case errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT):
			// No inode to probe with: whiteout falls back to the xattr form if mknod is refused later.
		default:
			return nil, false, &os.PathError{Op: "mknod", Path: filepath.Join(u.workPath, tmp), Err: err}
		}
	}
	ok = true
	return u, fresh, nil
}

func (u *upperFS) close() error {
	if u.closed.Swap(true) {
		return nil
	}
	if u.work >= 0 {
		// Nothing is being made any more: an empty work directory goes (a non-empty one waits for the
		// next mount to reclaim it).
		unix.Close(u.work)
		if u.workIn {
			unix.Unlinkat(u.root, workInName, unix.AT_REMOVEDIR)
		} else {
			unix.Rmdir(u.workPath)
		}
	}
	return unix.Close(u.root)
}

// openWork opens (making it when missing) the work directory, locks it and empties it of what a
// killed mount left: the kernel's overlayfs convention of a separate work directory on the upper
// directory's mount, which rename(2) needs. It is DIR's sibling .NAME.imgfs-work; when that cannot be
// made or is on another mount (DIR is a mount point, or its parent read-only), it is workInName inside
// DIR.
func (u *upperFS) openWork() error {
	var rst unix.Statx_t
	if err := unix.Statx(u.root, "", unix.AT_EMPTY_PATH, unix.STATX_MNT_ID, &rst); err != nil {
		return &os.PathError{Op: "statx", Path: u.dir, Err: err}
	}
	abs, err := filepath.Abs(u.dir)
	if err != nil {
		return err
	}
	sib := filepath.Join(filepath.Dir(abs), "."+filepath.Base(abs)+workSuffix)
	fd, err := openWorkAt(unix.AT_FDCWD, sib)
	if err == nil {
		var wst unix.Statx_t
		if e := unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_MNT_ID, &wst); e != nil ||
			wst.Mask&unix.STATX_MNT_ID == 0 || wst.Mnt_id != rst.Mnt_id || wst.Dev_major != rst.Dev_major ||
			wst.Dev_minor != rst.Dev_minor {
			unix.Close(fd)
			unix.Rmdir(sib)
			err = unix.EXDEV
		}
	}
	if err == nil {
		u.work, u.workPath = fd, sib
	} else {
		fd, err := openWorkAt(u.root, workInName)
		if err != nil {
			return &os.PathError{Op: "mkdir", Path: filepath.Join(u.dir, workInName), Err: err}
		}
		u.work, u.workPath, u.workIn = fd, filepath.Join(u.dir, workInName), true
	}
	if err := unix.Flock(u.work, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fmt.Errorf("upper directory %s: its work directory %s is in use by another mount: %w", u.dir, u.workPath, err)
	}
	if err := removeChildren(u.work); err != nil {
		return &os.PathError{Op: "reclaiming", Path: u.workPath, Err: err}
	}
	return nil
}

// openWorkAt makes (0700) and opens directory name of dirfd, which must be a directory of ours.
func openWorkAt(dirfd int, name string) (int, error) {
	if err := unix.Mkdirat(dirfd, name, 0o700); err != nil && err != unix.EEXIST {
		return -1, err
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Uid != uint32(os.Geteuid()) {
		unix.Close(fd)
		return -1, unix.EPERM
	}
	return fd, nil
}

// removeChildren removes everything in directory fd, never following a symlink.
func removeChildren(fd int) error {
	var names []string
	d, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	err = getdents(d, func(_ uint64, _ uint8, name string) bool { names = append(names, name); return true })
	unix.Close(d)
	if err != nil {
		return err
	}
	for _, name := range names {
		err := unix.Unlinkat(fd, name, 0)
		if err == unix.EISDIR || err == unix.EPERM {
			sub, e := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if e != nil {
				return e
			}
			e = removeChildren(sub)
			unix.Close(sub)
			if e != nil {
				return e
			}
			err = unix.Unlinkat(fd, name, unix.AT_REMOVEDIR)
		}
		if err != nil && err != unix.ENOENT {
			return err
		}
	}
	return nil
}

// procFD names descriptor fd through /proc: xattr calls on it reach the very file fd refers to (a
// symlink included) without following anything.
func procFD(fd int) string { return ovlfmt.ProcFD(fd) }

// dirEmpty reports whether directory fd has no entries.
func dirEmpty(fd int) (bool, error) {
	d, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, err
	}
	defer unix.Close(d)
	empty := true
	err = getdents(d, func(ino uint64, typ uint8, name string) bool {
		empty = false
		return false
	})
	return empty, err
}

// getdents calls fn for every entry of directory fd but "." and "..", until fn returns false.
func getdents(fd int, fn func(ino uint64, typ uint8, name string) bool) error {
	buf := make([]byte, 32<<10)
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n <= 0 {
			return nil
		}
		b := buf[:n]
		for len(b) >= 19 {
			ino := binary.NativeEndian.Uint64(b[0:8])
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < 19 || reclen > len(b) {
				return unix.EIO
			}
			typ := b[18]
			nb := b[19:reclen]
			for i, c := range nb {
				if c == 0 {
					nb = nb[:i]
					break
				}
			}
			b = b[reclen:]
			name := string(nb)
			if name == "." || name == ".." {
				continue
			}
			if !fn(ino, typ, name) {
				return nil
			}
		}
	}
}

// fdGetxattr reads xattr name of the file fd refers to (any descriptor, O_PATH included); ok is false
// when it has none of that name.
func fdGetxattr(fd int, name string) (val []byte, ok bool, err error) {
	return pathGetxattr(procFD(fd), name)
}

// pathGetxattr reads xattr name through path (a /proc/self/fd path).
func pathGetxattr(p, name string) ([]byte, bool, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Getxattr(p, name, buf)
		switch {
		case err == unix.ERANGE:
			sz, err := unix.Getxattr(p, name, nil)
			if err != nil {
				return nil, false, err
			}
			buf = make([]byte, sz+64)
			continue
		case err == unix.ENODATA:
			return nil, false, nil
		case err == unix.EOPNOTSUPP:
			return nil, false, nil
		case err != nil:
			return nil, false, err
		}
		return buf[:n], true, nil
	}
}

// pathListxattr lists the xattr names through path.
func pathListxattr(p string) ([]string, error) {
	var buf []byte
	for {
		sz, err := unix.Listxattr(p, nil)
		if err == unix.EOPNOTSUPP {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if sz == 0 {
			return nil, nil
		}
		buf = make([]byte, sz+64)
		n, err := unix.Listxattr(p, buf)
		if err == unix.ERANGE {
			continue
		}
		if err != nil {
			return nil, err
		}
		buf = buf[:n]
		break
	}
	var names []string
	for len(buf) > 0 {
		i := 0
		for i < len(buf) && buf[i] != 0 {
			i++
		}
		if i > 0 {
			names = append(names, string(buf[:i]))
		}
		if i < len(buf) {
			i++
		}
		buf = buf[i:]
	}
	return names, nil
}

// errp wraps errno e of operation op on path rel (relative to the upper directory).
func (u *upperFS) errp(op, rel string, e error) error {
	if e == unix.EXDEV {
		return fmt.Errorf("%w: %w", ErrCrossDevice, &os.PathError{Op: op, Path: filepath.Join(u.dir, rel), Err: e})
	}
	return &os.PathError{Op: op, Path: filepath.Join(u.dir, rel), Err: e}
}

// openat opens rel beneath the upper directory with flags (O_NOFOLLOW and O_CLOEXEC added).
func (u *upperFS) openat(rel string, flags int, mode uint32) (int, error) {
	return u.openBeneath(u.root, rel, rel, flags, mode)
}

// maxOpenPath is the longest path given to one openat2; longer ones are opened a part at a time (a
// path may be longer than PATH_MAX).
const maxOpenPath = 3072

// openBeneath opens rel beneath directory descriptor dirfd; full is the path for messages.
func (u *upperFS) openBeneath(dirfd int, rel, full string, flags int, mode uint32) (int, error) {
	if u.closed.Load() {
		return -1, u.errp("openat2", full, os.ErrClosed)
	}
	if len(rel) > maxOpenPath {
		i := strings.LastIndexByte(rel[:maxOpenPath], '/')
		if i <= 0 {
			return -1, u.errp("openat2", full, unix.ENAMETOOLONG)
		}
		mid, err := u.openBeneath(dirfd, rel[:i], full, unix.O_PATH|unix.O_DIRECTORY, 0)
		if err != nil {
			return -1, err
		}
		defer unix.Close(mid)
		return u.openBeneath(mid, rel[i+1:], full, flags, mode)
	}
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC | unix.O_NOFOLLOW), Mode: uint64(mode), Resolve: resolveBeneath}
	for try := 0; ; try++ {
		fd, err := unix.Openat2(dirfd, rel, &how)
		if (err == unix.EINTR || err == unix.EAGAIN) && try < 100 {
			continue
		}
		if err != nil {
			return -1, u.errp("openat2", full, err)
		}
		return fd, nil
	}
}

// upperDirFD is an open directory of the upper directory: a descriptor (O_PATH, or O_RDONLY for listings) and
// its path relative to the upper directory's root ("." for the root).
type upperDirFD struct {
	u        *upperFS
	fd       int
	rel      string
	borrowed bool // fd belongs to someone else: close leaves it open
}

// openDir opens directory rel of the upper directory.
func (u *upperFS) openDir(rel string, list bool) (upperDirFD, error) {
	flags := unix.O_PATH | unix.O_DIRECTORY
	if list {
		flags = unix.O_RDONLY | unix.O_DIRECTORY
	}
	fd, err := u.openat(rel, flags, 0)
	if err != nil {
		return upperDirFD{}, err
	}
	return upperDirFD{u: u, fd: fd, rel: rel}, nil
}

func (d upperDirFD) close() {
	if d.u != nil && !d.borrowed {
		unix.Close(d.fd)
	}
}

// path returns the path of name in d relative to the upper directory.
func (d upperDirFD) path(name string) string {
	if name == "" {
		return d.rel
	}
	if d.rel == "." {
		return name
	}
	return d.rel + "/" + name
}

func (d upperDirFD) err(op, name string, e error) error { return d.u.errp(op, d.path(name), e) }

// at returns the directory descriptor that holds name: the work directory for a temporary, else d.
func (d upperDirFD) at(name string) int {
	if d.u.work >= 0 && strings.HasPrefix(name, tmpPrefix) {
		return d.u.work
	}
	return d.fd
}

// stat lstat()s name in d ("" for d itself).
func (d upperDirFD) stat(name string, st *unix.Stat_t) error {
	flags := unix.AT_SYMLINK_NOFOLLOW
	if name == "" {
		flags |= unix.AT_EMPTY_PATH
	}
	if err := unix.Fstatat(d.at(name), name, st, flags); err != nil {
		return d.err("lstat", name, err)
	}
	return nil
}

// openChild opens name in d with flags (never following it).
func (d upperDirFD) openChild(name string, flags int, mode uint32) (int, error) {
	return d.u.openBeneath(d.at(name), name, d.path(name), flags, mode)
}

// withChild calls fn with an O_PATH descriptor of name in d (d itself when name is "").
func (d upperDirFD) withChild(name string, fn func(fd int) error) error {
	if name == "" {
		return fn(d.fd)
	}
	fd, err := d.openChild(name, unix.O_PATH, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return fn(fd)
}

// getxattr reads xattr x of name in d.
func (d upperDirFD) getxattr(name, x string) (val []byte, ok bool, err error) {
	err = d.withChild(name, func(fd int) error {
		var e error
		val, ok, e = fdGetxattr(fd, x)
		if e != nil {
			return d.err("getxattr", name, e)
		}
		return nil
	})
	return val, ok, err
}

// setxattr sets xattr x of name in d.
func (d upperDirFD) setxattr(name, x string, val []byte, flags int) error {
	return d.withChild(name, func(fd int) error {
		if err := unix.Setxattr(procFD(fd), x, val, flags); err != nil {
			return d.err("setxattr", name, err)
		}
		return nil
	})
}

// removexattr removes xattr x of name in d.
func (d upperDirFD) removexattr(name, x string) error {
	return d.withChild(name, func(fd int) error {
		if err := unix.Removexattr(procFD(fd), x); err != nil {
			return d.err("removexattr", name, err)
		}
		return nil
	})
}

// xattrs lists the xattrs of name in d with their values.
func (d upperDirFD) xattrs(name string) (names []string, vals [][]byte, err error) {
	err = d.withChild(name, func(fd int) error {
		p := procFD(fd)
		ns, e := pathListxattr(p)
		if e != nil {
			return d.err("listxattr", name, e)
		}
		for _, x := range ns {
			v, ok, e := pathGetxattr(p, x)
			if e != nil {
				return d.err("getxattr", name, e)
			}
			if ok {
				names = append(names, x)
				vals = append(vals, v)
			}
		}
		return nil
	})
	return names, vals, err
}

// markerFlags reads the overlayfs markers of directory name in d by ovlfmt's rules: opaque, and whether
// it may hold xattr whiteouts; a directory moved by redirect_dir is refused.
func (d upperDirFD) markerFlags(name string) (opaque, xwh bool, err error) {
	err = d.withChild(name, func(fd int) error {
		m, e := ovlfmt.ReadDirMarks(d.childGet(name, procFD(fd)))
		opaque, xwh = m.Opaque, m.XattrWhiteouts
		return e
	})
	return opaque, xwh, err
}

// isXattrWhiteout reports whether regular file name of d (with stat st), in a directory that may hold
// xattr whiteouts, is one by ovlfmt's rules.
func (d upperDirFD) isXattrWhiteout(name string, st *unix.Stat_t) (bool, error) {
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size != 0 {
		return false, nil
	}
	found := false
	err := d.withChild(name, func(fd int) error {
		var e error
		found, e = ovlfmt.IsXattrWhiteout(st.Size, true, d.childGet(name, procFD(fd)))
		return e
	})
	return found, err
}

// childGet returns the ovlfmt.Getxattr of entry name of d through p (its /proc/self/fd path); its
// errors name the entry, and what ovlfmt refuses keeps ErrUnsupported.
func (d upperDirFD) childGet(name, p string) ovlfmt.Getxattr {
	return func(attr string) ([]byte, bool, error) {
		v, ok, err := pathGetxattr(p, attr)
		if err != nil {
			return nil, false, d.err("getxattr", name, err)
		}
		return v, ok, nil
	}
}

// tmpName returns a fresh temporary name.
func (u *upperFS) tmpName() string {
	return tmpPrefix + strconv.Itoa(os.Getpid()) + "." + strconv.FormatUint(u.tmpSeq.Add(1), 10)
}

// makeTemp calls mk with fresh temporary names until one does not exist yet, and returns it.
func (d upperDirFD) makeTemp(mk func(tmp string) error) (string, error) {
	for try := 0; ; try++ {
		tmp := d.u.tmpName()
		err := mk(tmp)
		if errors.Is(err, unix.EEXIST) && try < 100 {
			continue
		}
		if err != nil {
			return "", err
		}
		return tmp, nil
	}
}

func (d upperDirFD) mkdir(name string, mode uint32) error {
	if err := unix.Mkdirat(d.at(name), name, mode); err != nil {
		return d.err("mkdir", name, err)
	}
	return nil
}

func (d upperDirFD) mknod(name string, mode uint32, dev uint64) error {
	if err := unix.Mknodat(d.at(name), name, mode, int(dev)); err != nil {
		return d.err("mknod", name, err)
	}
	return nil
}

func (d upperDirFD) symlink(target, name string) error {
	if err := unix.Symlinkat(target, d.at(name), name); err != nil {
		return d.err("symlink", name, err)
	}
	return nil
}

func (d upperDirFD) readlink(name string) (string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Readlinkat(d.at(name), name, buf)
		if err != nil {
			return "", d.err("readlink", name, err)
		}
		if n < len(buf) {
			return string(buf[:n]), nil
		}
		buf = make([]byte, 2*len(buf))
	}
}

func (d upperDirFD) unlink(name string, dir bool) error {
	flags := 0
	if dir {
		flags = unix.AT_REMOVEDIR
	}
	if err := unix.Unlinkat(d.at(name), name, flags); err != nil {
		return d.err("unlink", name, err)
	}
	return nil
}

// rename moves name of d to newName of nd with renameat2 flags.
func (d upperDirFD) rename(name string, nd upperDirFD, newName string, flags uint) error {
	if err := unix.Renameat2(d.at(name), name, nd.at(newName), newName, flags); err != nil {
		return d.u.errp("rename", d.path(name)+" to "+nd.path(newName), err)
	}
	return nil
}

// link makes newName of nd a hard link to name of d.
func (d upperDirFD) link(name string, nd upperDirFD, newName string) error {
	if err := unix.Linkat(d.at(name), name, nd.at(newName), newName, 0); err != nil {
		return d.u.errp("link", d.path(name)+" to "+nd.path(newName), err)
	}
	return nil
}

// chown changes the owner of name in d (d itself when name is ""), not following it.
func (d upperDirFD) chown(name string, uid, gid int) error {
	flags := unix.AT_SYMLINK_NOFOLLOW
	if name == "" {
		flags |= unix.AT_EMPTY_PATH
	}
	if err := unix.Fchownat(d.at(name), name, uid, gid, flags); err != nil {
		return d.err("chown", name, err)
	}
	return nil
}

// chmod changes the mode of name in d (d itself when name is ""), not following it. Symlinks have no
// mode of their own: chmod of one does nothing.
func (d upperDirFD) chmod(name string, mode uint32) error {
	flags := unix.AT_SYMLINK_NOFOLLOW
	if name == "" {
		flags |= unix.AT_EMPTY_PATH
	}
	err := unix.Fchmodat(d.at(name), name, mode, flags)
	if err == unix.EOPNOTSUPP || err == unix.ENOSYS || err == unix.EINVAL {
		// No fchmodat2 (or a symlink): change it through an O_PATH descriptor.
		err = d.withChild(name, func(fd int) error {
			var st unix.Stat_t
			if e := unix.Fstat(fd, &st); e != nil {
				return e
			}
			if st.Mode&unix.S_IFMT == unix.S_IFLNK {
				return nil
			}
			return unix.Chmod(procFD(fd), mode)
		})
	}
	if err != nil {
		return d.err("chmod", name, err)
	}
	return nil
}

// utimes sets the access and modification times of name in d (d itself when name is ""); a nil time
// stays.
func (d upperDirFD) utimes(name string, atime, mtime *time.Time) error {
	ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_OMIT}}
	if atime != nil {
		ts[0] = unix.Timespec{Sec: atime.Unix(), Nsec: int64(atime.Nanosecond())}
	}
	if mtime != nil {
		ts[1] = unix.Timespec{Sec: mtime.Unix(), Nsec: int64(mtime.Nanosecond())}
	}
	flags := unix.AT_SYMLINK_NOFOLLOW
	if name == "" {
		flags |= unix.AT_EMPTY_PATH
	}
	if err := unix.UtimesNanoAt(d.at(name), name, ts, flags); err != nil {
		if name == "" && err == unix.EINVAL {
			err = unix.UtimesNanoAt(unix.AT_FDCWD, procFD(d.fd), ts, 0)
		}
		if err != nil {
			return d.err("utimes", name, err)
		}
	}
	return nil
}

// setTimes sets name's times to those of st (d itself when name is "").
func (d upperDirFD) setTimes(name string, st *unix.Stat_t) error {
	a := time.Unix(st.Atim.Sec, st.Atim.Nsec)
	m := time.Unix(st.Mtim.Sec, st.Mtim.Nsec)
	return d.utimes(name, &a, &m)
}

// whiteout makes name in d a whiteout (name must not exist): a character device 0/0, or, when that
// cannot be made, an empty file with overlay.whiteout in a directory marked as holding such whiteouts.
// It reports whether it made an xattr whiteout.
func (d upperDirFD) whiteout(name string) (xattr bool, err error) {
	if !d.u.xwh {
		err := unix.Mknodat(d.at(name), name, unix.S_IFCHR, 0)
		if err == nil {
			return false, nil
		}
		if err != unix.EPERM {
			return false, d.err("mknod", name, err)
		}
	}
	if err := d.markXwh(); err != nil {
		return false, err
	}
	fd, err := d.openChild(name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o600)
	if err != nil {
		return false, err
	}
	unix.Close(fd)
	if err := d.setxattr(name, d.u.ns+xWhiteout, []byte("y"), 0); err != nil {
		unix.Unlinkat(d.at(name), name, 0)
		return false, err
	}
	return true, nil
}

// markXwh marks d as a directory that may hold xattr whiteouts: overlay.whiteouts, and overlay.opaque="x"
// unless it is opaque already.
func (d upperDirFD) markXwh() error {
	if err := d.setxattr("", d.u.ns+xWhiteouts, []byte("y"), 0); err != nil {
		return err
	}
	v, ok, err := d.getxattr("", d.u.ns+xOpaque)
	if err != nil {
		return err
	}
	if ok && string(v) == "y" {
		return nil
	}
	return d.setxattr("", d.u.ns+xOpaque, []byte("x"), 0)
}

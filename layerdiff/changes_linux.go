package layerdiff

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/internal/ovlfmt"
	"golang.org/x/sys/unix"
)

// changeDir is an open directory of an upper directory tree. Everything below it is reached one name at
// a time relative to its descriptor, with O_NOFOLLOW and lstat-style calls, so no symlink in the tree is
// ever followed and nothing outside it is read. Extended attributes are read through
// /proc/self/fd/<dir>/<name> with the l*xattr calls, which resolve that one name in the open directory
// without following it.
type changeDir struct {
	f    *os.File
	fd   int
	path string // for messages: the upper directory's path joined with the relative one
	xwh  bool   // marked as holding xattr whiteouts (ovlfmt.DirMarks)
}

// openChangeRoot opens upper directory dir.
func openChangeRoot(dir string) (*changeDir, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	d := &changeDir{f: os.NewFile(uintptr(fd), dir), fd: fd, path: dir}
	// The extended attributes of entries are read through /proc: make sure it is there and is ours.
	if err := ovlfmt.CheckProc(fd, dir); err != nil {
		d.close()
		return nil, err
	}
	// The root is always merged (never opaque), but it may hold xattr whiteouts.
	m, err := ovlfmt.ReadDirMarks(func(name string) ([]byte, bool, error) {
		return changeGetxattr(func(attr string, buf []byte) (int, error) { return unix.Fgetxattr(fd, attr, buf) }, name)
	})
	if err != nil {
		d.close()
		return nil, fmt.Errorf("reading xattrs of %s: %w", dir, err)
	}
	d.xwh = m.XattrWhiteouts
	return d, nil
}

// close closes the directory.
func (d *changeDir) close() { d.f.Close() }

// join returns the path of name in d, for messages.
func (d *changeDir) join(name string) string { return filepath.Join(d.path, name) }

// proc returns a path naming entry name of d (d itself when name is empty) through /proc, which the
// l*xattr calls resolve without following name.
func (d *changeDir) proc(name string) string {
	p := ovlfmt.ProcFD(d.fd)
	if name != "" {
		p += "/" + name
	}
	return p
}

// list returns d's entries sorted bytewise by name, with whiteouts and opaque directories marked.
// Entries removed while listing are left out.
func (d *changeDir) list(ctx context.Context) ([]changeEntry, error) {
	names, err := d.f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("reading directory %s: %w", d.path, err)
	}
	slices.Sort(names)
	ents := make([]changeEntry, 0, len(names))
	for i, name := range names {
		if i&255 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		var st unix.Stat_t
		if err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if err == unix.ENOENT {
				continue
			}
			return nil, &os.PathError{Op: "lstat", Path: d.join(name), Err: err}
		}
		e := changeEntryOf(name, &st)
		if err := d.classify(&e, changeGet(d.proc(name))); err != nil {
			return nil, err
		}
		ents = append(ents, e)
	}
	return ents, nil
}

// classify marks e as a whiteout or an opaque directory from its type and extended attributes (read
// with get) by the rules of package ovlfmt, which the writable view follows too, and refuses
// directories moved by redirect_dir.
func (d *changeDir) classify(e *changeEntry, get ovlfmt.Getxattr) error {
	var err error
	switch e.typ {
	case index.TypeChar:
		e.whiteout = ovlfmt.IsWhiteoutDevice(uint64(unix.Mkdev(e.devmajor, e.devminor)))
	case index.TypeRegular:
		e.whiteout, err = ovlfmt.IsXattrWhiteout(e.size, d.xwh, get)
	case index.TypeDir:
		var m ovlfmt.DirMarks
		m, err = ovlfmt.ReadDirMarks(get)
		e.opaque, e.xwh = m.Opaque, m.XattrWhiteouts
	}
	if errors.Is(err, errors.ErrUnsupported) {
		return fmt.Errorf("%s: %w", d.join(e.name), err)
	}
	if err != nil {
		return fmt.Errorf("reading xattrs of %s: %w", d.join(e.name), err)
	}
	return nil
}

// changeGet returns the ovlfmt.Getxattr of the entry that path (a /proc path) names, not following it.
func changeGet(path string) ovlfmt.Getxattr {
	return func(name string) ([]byte, bool, error) {
		return changeGetxattr(func(attr string, buf []byte) (int, error) { return unix.Lgetxattr(path, attr, buf) }, name)
	}
}

// xattrs returns the extended attributes of entry e of d that a layer carries (not the overlay or imgfs
// ones), sorted by name. A regular file whose data the kernel's metacopy left below is refused, as the
// writable view refuses to open one.
func (d *changeDir) xattrs(e *changeEntry) ([]index.Xattr, error) {
	p := d.proc(e.name)
	buf := make([]byte, 256)
	var n int
	for {
		var err error
		n, err = unix.Llistxattr(p, buf)
		if err == nil {
			break
		}
		if err == unix.ENOTSUP {
			return nil, nil
		}
		if err != unix.ERANGE || len(buf) >= 1<<20 {
			return nil, fmt.Errorf("listing xattrs of %s: %w", d.join(e.name), err)
		}
		buf = make([]byte, 2*len(buf))
	}
	if n == 0 {
		return nil, nil
	}
	if e.typ == index.TypeRegular {
		if err := ovlfmt.CheckFile(changeGet(p)); err != nil {
			return nil, fmt.Errorf("%s: %w", d.join(e.name), err)
		}
	}
	get := func(attr string, b []byte) (int, error) { return unix.Lgetxattr(p, attr, b) }
	var out []index.Xattr
	for name := range strings.SplitSeq(strings.TrimSuffix(string(buf[:n]), "\x00"), "\x00") {
		if name == "" || changeXattrIgnored(name) {
			continue
		}
		v, ok, err := changeGetxattr(get, name)
		if err != nil {
			return nil, fmt.Errorf("reading xattr %s of %s: %w", name, d.join(e.name), err)
		}
		if ok {
			out = append(out, index.Xattr{Name: name, Value: v})
		}
	}
	slices.SortFunc(out, func(a, b index.Xattr) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// changeGetxattr reads attribute name with get; ok is false when the entry has no such attribute (or
// its file system has none at all).
func changeGetxattr(get func(attr string, buf []byte) (int, error), name string) (v []byte, ok bool, err error) {
	buf := make([]byte, 128)
	for {
		n, err := get(name, buf)
		switch err {
		case nil:
			return buf[:n:n], true, nil
		case unix.ENODATA, unix.ENOTSUP:
			return nil, false, nil
		case unix.ERANGE:
			if len(buf) >= 1<<20 {
				return nil, false, err
			}
			buf = make([]byte, 4*len(buf))
		default:
			return nil, false, err
		}
	}
}

// sub opens directory entry e of d.
func (d *changeDir) sub(e *changeEntry) (*changeDir, error) {
	fd, err := d.openat(e, unix.O_RDONLY|unix.O_DIRECTORY, unix.S_IFDIR)
	if err != nil {
		return nil, err
	}
	p := d.join(e.name)
	return &changeDir{f: os.NewFile(uintptr(fd), p), fd: fd, path: p, xwh: e.xwh}, nil
}

// open opens regular file e of d for reading.
func (d *changeDir) open(e *changeEntry) (*os.File, error) {
	fd, err := d.openat(e, unix.O_RDONLY, unix.S_IFREG)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), d.join(e.name)), nil
}

// openat opens entry e of d without following it, and checks that it is still the entry listed.
func (d *changeDir) openat(e *changeEntry, flags int, typ uint32) (int, error) {
	fd, err := unix.Openat(d.fd, e.name, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: d.join(e.name), Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, &os.PathError{Op: "stat", Path: d.join(e.name), Err: err}
	}
	if st.Mode&unix.S_IFMT != typ || uint64(st.Dev) != e.dev || uint64(st.Ino) != e.ino {
		unix.Close(fd)
		return -1, fmt.Errorf("%s: replaced while being read", d.join(e.name))
	}
	// O_NONBLOCK only kept the open from hanging on a FIFO swapped in after the listing.
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return -1, &os.PathError{Op: "fcntl", Path: d.join(e.name), Err: err}
	}
	return fd, nil
}

// readlink returns the target of symlink e of d, verbatim.
func (d *changeDir) readlink(e *changeEntry) (string, error) {
	size := max(int(e.size)+1, 256)
	for {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(d.fd, e.name, buf)
		if err != nil {
			return "", &os.PathError{Op: "readlink", Path: d.join(e.name), Err: err}
		}
		if n < len(buf) {
			return string(buf[:n]), nil
		}
		if size >= 1<<20 {
			return "", fmt.Errorf("%s: symlink target too long", d.join(e.name))
		}
		size *= 4
	}
}

// changeEntryOf returns the entry described by st.
func changeEntryOf(name string, st *unix.Stat_t) changeEntry {
	sec, nsec := st.Mtim.Unix()
	e := changeEntry{
		name: name, mode: st.Mode & 0o7777, uid: st.Uid, gid: st.Gid,
		mtimeSec: sec, mtimeNsec: uint32(nsec),
		dev: uint64(st.Dev), ino: uint64(st.Ino), nlink: uint64(st.Nlink),
	}
	switch e.typ = index.TypeOfMode(st.Mode); e.typ {
	case index.TypeRegular, index.TypeSymlink:
		e.size = st.Size
	case index.TypeSocket:
		e.typ = 0 // a layer cannot hold one
	}
	if e.typ == index.TypeChar || e.typ == index.TypeBlock {
		e.devmajor, e.devminor = unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev))
	}
	return e
}

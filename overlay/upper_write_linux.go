package overlay

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/imgfs/imgfs/index"
	"golang.org/x/sys/unix"
)

// checkNewName refuses names that cannot be created: not one path component (ErrInvalid) or a whiteout
// name (ErrReservedName).
func checkNewName(name string) error {
	if name == "" || name == "." || name == ".." || strings.IndexByte(name, '/') >= 0 || strings.IndexByte(name, 0) >= 0 {
		return ErrInvalid
	}
	if strings.HasPrefix(name, whPrefix) {
		return ErrReservedName
	}
	return nil
}

// ignorable reports whether err, met while copying metadata that the upper directory's owner may not
// set (ownership, trusted.* or security.* xattrs, user.* xattrs on special files), only loses that bit.
func ignorable(err error) bool {
	return errors.Is(err, unix.EPERM) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EACCES)
}

// applyMeta gives name in d the attributes a and xattrs xs: owner, xattrs (after chown, which clears
// file capabilities), mode (after chown, which clears setuid bits), then times.
func (s *upperState) applyMeta(d upperDirFD, name string, a Attr, xs []index.Xattr) error {
	if err := d.chown(name, int(a.UID), int(a.GID)); err != nil {
		if s.fs.priv || !ignorable(err) {
			return err
		}
		s.log.Debug("overlay: cannot keep the owner in the upper directory", "path", d.path(name), "err", err)
	}
	for _, x := range xs {
		if hiddenXattr(x.Name) {
			continue
		}
		if err := d.setxattr(name, x.Name, x.Value, 0); err != nil {
			if !ignorable(err) {
				return err
			}
			s.log.Debug("overlay: cannot copy an xattr up", "path", d.path(name), "xattr", x.Name, "err", err)
		}
	}
	if a.Type != index.TypeSymlink {
		if err := d.chmod(name, a.Mode&0o7777); err != nil {
			return err
		}
	}
	m := time.Unix(a.MtimeSec, int64(a.MtimeNsec))
	return d.utimes(name, &m, &m)
}

// ensureDir gives directory n an upper directory, copying up it and every parent that has none (with
// their metadata). Caller holds wmu.
func (s *upperState) ensureDir(n Node) error {
	if n == Root || s.has(n) {
		return nil
	}
	if n&upperBit != 0 {
		return ErrNotExist
	}
	f, e, err := s.v.frameOf(n)
	if err != nil {
		return err
	}
	if e.Type != index.TypeDir {
		return ErrNotDir
	}
	// A lower node without an upper entry is still at its path of the layers: moving a directory copies
	// up everything below it.
	cur := Root
	for c := range strings.SplitSeq(s.v.layers[f.layer].Path(f.id), "/") {
		a, err := s.lookupLocked(cur, c)
		if err != nil {
			return err
		}
		if a.Type != index.TypeDir {
			return ErrNotExist
		}
		if !s.has(a.Node) {
			if err := s.copyUpDir(cur, c, a.Node); err != nil {
				return err
			}
			if fn := s.onDirCopyUp.Load(); fn != nil {
				(*fn)(a.Node)
			}
		}
		cur = a.Node
	}
	if cur != n {
		return ErrNotExist
	}
	return nil
}

// copyUpDir makes the upper directory of lower directory n, called name in upper directory p.
func (s *upperState) copyUpDir(p Node, name string, n Node) error {
	a, err := s.v.lowerAttr(n)
	if err != nil {
		return err
	}
	xs, err := s.v.lowerXattrs(n)
	if err != nil {
		return err
	}
	pd, err := s.dirOf(p, false)
	if err != nil {
		return err
	}
	defer pd.close()
	var pst unix.Stat_t
	if err := pd.stat("", &pst); err != nil {
		return err
	}
	tmp, err := pd.makeTemp(func(t string) error { return pd.mkdir(t, 0o700) })
	if err != nil {
		return err
	}
	if err := s.applyMeta(pd, tmp, a, xs); err != nil {
		pd.unlink(tmp, true)
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := pd.rename(tmp, pd, name, unix.RENAME_NOREPLACE); err != nil {
		pd.unlink(tmp, true)
		return err
	}
	s.restoreTimes(pd, &pst)
	var st unix.Stat_t
	if err := pd.stat(name, &st); err != nil {
		return err
	}
	s.addRec(n, []nameLoc{{p, name}}, index.TypeDir, st.Ino, false)
	return nil
}

// restoreTimes puts directory d's times back to st's: a copy-up does not change the view.
func (s *upperState) restoreTimes(d upperDirFD, st *unix.Stat_t) {
	if err := d.setTimes("", st); err != nil {
		s.log.Debug("overlay: restoring a directory's times", "path", d.rel, "err", err)
	}
}

// linkTargets returns the hard link entries that resolve to frame t.
func (s *upperState) linkTargets(t frame) []frame {
	links := s.v.links
	if len(links) == 0 {
		return nil
	}
	s.linksOnce.Do(func() {
		idx := make([]int32, 0, len(links))
		for i, r := range links {
			if r.ok {
				idx = append(idx, int32(i))
			}
		}
		slices.SortFunc(idx, func(a, b int32) int { return cmpFrame(links[a].target, links[b].target) })
		s.byTarget = idx
	})
	i, _ := slices.BinarySearchFunc(s.byTarget, t, func(x int32, t frame) int { return cmpFrame(links[x].target, t) })
	var out []frame
	for ; i < len(s.byTarget) && links[s.byTarget[i]].target == t; i++ {
		out = append(out, links[s.byTarget[i]].key)
	}
	return out
}

// resolveDir returns the node of directory path p ("a/b", "" for the root) in the view.
func (s *upperState) resolveDir(p string) (Node, error) {
	cur := Root
	if p == "" {
		return cur, nil
	}
	for c := range strings.SplitSeq(p, "/") {
		a, err := s.lookupLocked(cur, c)
		if err != nil {
			return 0, err
		}
		if a.Type != index.TypeDir {
			return 0, ErrNotDir
		}
		cur = a.Node
	}
	return cur, nil
}

// lowerNames returns every name under which the view shows lower node n (entry f): its own path and
// the paths of the hard links that resolve to it, where they still show n.
func (s *upperState) lowerNames(n Node, f frame) ([]nameLoc, error) {
	paths := []string{s.v.layers[f.layer].Path(f.id)}
	for _, k := range s.linkTargets(f) {
		paths = append(paths, s.v.layers[k.layer].Path(k.id))
	}
	var out []nameLoc
	for _, p := range paths {
		dir, base := "", p
		if i := strings.LastIndexByte(p, '/'); i >= 0 {
			dir, base = p[:i], p[i+1:]
		}
		parent, err := s.resolveDir(dir)
		if err != nil {
			continue
		}
		a, err := s.lookupLocked(parent, base)
		if err != nil || a.Node != n {
			continue
		}
		if l := (nameLoc{parent, base}); !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	if len(out) == 0 {
		return nil, ErrNotExist
	}
	return out, nil
}

// copyUp copies lower node n up: a directory gets its upper directory; a non-directory is copied (data
// into a temporary file of the upper parent, fsynced, then metadata) and renamed into place, and linked
// under every other name that shows it. Caller holds wmu, which makes it happen exactly once.
func (s *upperState) copyUp(n Node) error { return s.copyUpKeep(n, -1) }

// copyUpKeep is copyUp for a file about to be truncated to keep bytes (keep < 0: not truncated): only
// the data that survives is copied.
func (s *upperState) copyUpKeep(n Node, keep int64) error {
	if n == Root || s.has(n) {
		return nil
	}
	if n&upperBit != 0 {
		return ErrNotExist
	}
	f, e, err := s.v.frameOf(n)
	if err != nil {
		return err
	}
	switch e.Type {
	case index.TypeDir:
		return s.ensureDir(n)
	case index.TypeHardlink:
		return ErrInvalid
	}
	names, err := s.prepareCopyUp(n, f)
	if err != nil {
		return err
	}
	a, err := s.v.lowerAttr(n)
	if err != nil {
		return err
	}
	xs, err := s.v.lowerXattrs(n)
	if err != nil {
		return err
	}
	pd, err := s.dirOf(names[0].parent, false)
	if err != nil {
		return err
	}
	defer pd.close()
	var pst unix.Stat_t
	if err := pd.stat("", &pst); err != nil {
		return err
	}
	tmp, err := s.copyTemp(pd, f, e, keep)
	if err != nil {
		return err
	}
	if err := s.applyMeta(pd, tmp, a, xs); err != nil {
		pd.unlink(tmp, false)
		return err
	}
	return s.installCopyUp(n, e.Type, pd, &pst, tmp, names)
}

// prepareCopyUp returns the names of lower node n (of frame f) and gives each of their parents its upper
// directory.
func (s *upperState) prepareCopyUp(n Node, f frame) ([]nameLoc, error) {
	names, err := s.lowerNames(n, f)
	if err != nil {
		return nil, err
	}
	for _, nm := range names {
		if err := s.ensureDir(nm.parent); err != nil {
			return nil, err
		}
	}
	return names, nil
}

// copyTemp makes a temporary copy in pd of member e of frame f, with its data up to keep bytes (keep <
// 0: all of it), and returns its name.
func (s *upperState) copyTemp(pd upperDirFD, f frame, e index.Entry, keep int64) (string, error) {
	l := s.v.layers[f.layer]
	switch e.Type {
	case index.TypeRegular:
		var file *os.File
		tmp, err := pd.makeTemp(func(t string) error {
			fd, err := pd.openChild(t, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o600)
			if err == nil {
				file = os.NewFile(uintptr(fd), filepath.Join(s.fs.dir, pd.path(t)))
			}
			return err
		})
		if err != nil {
			return "", err
		}
		size := e.Size
		if keep >= 0 {
			size = min(size, keep)
		}
		err = copyData(file, l, f.id, size)
		if cerr := file.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			pd.unlink(tmp, false)
			return "", fmt.Errorf("copying up %s: %w", l.Path(f.id), err)
		}
		return tmp, nil
	case index.TypeSymlink:
		return pd.makeTemp(func(t string) error { return pd.symlink(l.LinkName(f.id), t) })
	case index.TypeFIFO:
		return pd.makeTemp(func(t string) error { return pd.mknod(t, unix.S_IFIFO|0o600, 0) })
	case index.TypeChar, index.TypeBlock:
		mode := uint32(unix.S_IFCHR)
		if e.Type == index.TypeBlock {
			mode = unix.S_IFBLK
		}
		dev := unix.Mkdev(e.Devmajor, e.Devminor)
		return pd.makeTemp(func(t string) error { return pd.mknod(t, mode|0o600, dev) })
	}
	return "", ErrInvalid
}

// installCopyUp renames temporary tmp of pd (whose times were pst) to the first of names, links it
// under the others and records node n (of type typ) as upper.
func (s *upperState) installCopyUp(n Node, typ index.Type, pd upperDirFD, pst *unix.Stat_t, tmp string, names []nameLoc) error {
	first := names[0]
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := pd.rename(tmp, pd, first.name, unix.RENAME_NOREPLACE); err != nil {
		pd.unlink(tmp, false)
		return err
	}
	var st unix.Stat_t
	if err := pd.stat(first.name, &st); err != nil {
		return err
	}
	locs := []nameLoc{first}
	for _, o := range names[1:] {
		if err := s.linkAt(pd, first.name, o); err != nil {
			s.addRec(n, locs, typ, st.Ino, false)
			s.gen.Add(1)
			return err
		}
		locs = append(locs, o)
	}
	s.restoreTimes(pd, pst)
	s.addRec(n, locs, typ, st.Ino, false)
	s.gen.Add(1)
	return nil
}

// linkAt links name of d as o, keeping o's directory times.
func (s *upperState) linkAt(d upperDirFD, name string, o nameLoc) error {
	od, err := s.dirOf(o.parent, false)
	if err != nil {
		return err
	}
	defer od.close()
	var ost unix.Stat_t
	if err := od.stat("", &ost); err != nil {
		return err
	}
	if err := d.link(name, od, o.name); err != nil {
		return err
	}
	s.restoreTimes(od, &ost)
	return nil
}

// copyBufs holds copy-up buffers.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// holeChunk is the granularity at which runs of zeros are left as holes in copied-up files.
const holeChunk = 64 << 10

// copyData copies the size bytes of member id of l into dst (copy_file_range when the member is a
// plain file range, else reads; runs of zeros become holes) and fsyncs it.
func copyData(dst *os.File, l Layer, id index.ID, size int64) error {
	if sl, ok := l.(SparseLayer); ok && l.Entry(id).Flags&index.FlagSparse != 0 {
		return copySparse(dst, l, sl, id, size)
	}
	var off int64
	if src, base, ok := l.FileRange(id); ok && src != nil {
		for off < size {
			soff, doff := base+off, off
			n, err := unix.CopyFileRange(int(src.Fd()), &soff, int(dst.Fd()), &doff, int(min(size-off, 1<<30)), 0)
			if err != nil || n <= 0 {
				break // not supported here: read and write the rest
			}
			off += int64(n)
		}
	}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for off < size {
		want := min(int64(len(buf)), size-off)
		n, err := l.ReadAt(id, buf[:want], off)
		for i := 0; i < n; i += holeChunk {
			c := buf[i:min(n, i+holeChunk)]
			if !allZero(c) {
				if _, err := dst.WriteAt(c, off+int64(i)); err != nil {
					return err
				}
			}
		}
		off += int64(n)
		if err := copyReadErr(n, err, off, size); err != nil {
			return err
		}
	}
	// copy_file_range read the layer's file directly, without the layer's own check.
	if err := checkSource(l); err != nil {
		return err
	}
	if err := dst.Truncate(size); err != nil {
		return err
	}
	return dst.Sync()
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// install moves temporary entry tmp of d to name: when name holds a whiteout it replaces it (a
// directory is exchanged with it, then the whiteout removed).
func (s *upperState) install(d upperDirFD, tmp, name string, dir, overWhiteout bool) error {
	switch {
	case !overWhiteout:
		return d.rename(tmp, d, name, unix.RENAME_NOREPLACE)
	case !dir:
		return d.rename(tmp, d, name, 0)
	}
	if err := d.rename(tmp, d, name, unix.RENAME_EXCHANGE); err != nil {
		return err
	}
	if err := d.unlink(tmp, false); err != nil {
		s.log.Warn("overlay: removing a replaced whiteout", "path", d.path(tmp), "err", err)
	}
	return nil
}

// freeIn returns the attributes of p, which must be a directory in which name is free. Caller holds
// wmu.
func (s *upperState) freeIn(p Node, name string) (Attr, error) {
	pa, err := s.attrLocked(p)
	if err != nil {
		return Attr{}, err
	}
	if pa.Type != index.TypeDir {
		return Attr{}, ErrNotDir
	}
	if _, err := s.lookupLocked(p, name); err == nil {
		return Attr{}, ErrExist
	} else if !errors.Is(err, ErrNotExist) {
		return Attr{}, err
	}
	return pa, nil
}

// newEntry makes a new entry called name in directory p, of type typ, owned by c with mode, made by mk
// under a temporary name and then moved into place. Caller holds wmu.
func (s *upperState) newEntry(p Node, name string, typ index.Type, mode uint32, c Caller, mk func(d upperDirFD, tmp string) error) (Attr, error) {
	if err := checkNewName(name); err != nil {
		return Attr{}, err
	}
	pa, err := s.freeIn(p, name)
	if err != nil {
		return Attr{}, err
	}
	if err := s.ensureDir(p); err != nil {
		return Attr{}, err
	}
	pr, _ := s.get(p)
	pd, err := s.dirOf(p, false)
	if err != nil {
		return Attr{}, err
	}
	defer pd.close()
	var cst unix.Stat_t
	kind, err := s.classify(pd, name, &cst, pr.xwh)
	if err != nil {
		return Attr{}, err
	}
	if kind == upperEntry {
		return Attr{}, ErrExist
	}
	uid, gid := c.UID, c.GID
	if pa.Mode&unix.S_ISGID != 0 {
		gid = pa.GID
		if typ == index.TypeDir {
			mode |= unix.S_ISGID
		}
	}
	opaque := typ == index.TypeDir && kind == upperWhiteout && s.lowerDirAt(p, name)
	tmp, err := pd.makeTemp(func(t string) error { return mk(pd, t) })
	if err != nil {
		return Attr{}, err
	}
	fail := func(err error) (Attr, error) {
		pd.unlink(tmp, typ == index.TypeDir)
		return Attr{}, err
	}
	if err := pd.chown(tmp, int(uid), int(gid)); err != nil && !(!s.fs.priv && ignorable(err)) {
		return fail(err)
	}
	if typ != index.TypeSymlink {
		if err := pd.chmod(tmp, mode&0o7777); err != nil {
			return fail(err)
		}
	}
	if opaque {
		if err := pd.setxattr(tmp, s.fs.ns+xOpaque, []byte("y"), 0); err != nil {
			return fail(err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.install(pd, tmp, name, typ == index.TypeDir, kind == upperWhiteout); err != nil {
		return fail(err)
	}
	var st unix.Stat_t
	if err := pd.stat(name, &st); err != nil {
		return Attr{}, err
	}
	n := s.newNode()
	s.addRec(n, []nameLoc{{p, name}}, typ, st.Ino, opaque)
	return s.attrOf(n, &st), nil
}

func (s *upperState) create(p Node, name string, mode uint32, c Caller) (Attr, WFile, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var file *os.File
	var fd int
	a, err := s.newEntry(p, name, index.TypeRegular, mode, c, func(d upperDirFD, t string) error {
		var err error
		fd, err = d.openChild(t, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o600)
		if err == nil {
			file = os.NewFile(uintptr(fd), filepath.Join(s.fs.dir, d.path(name)))
		}
		return err
	})
	if err != nil {
		if file != nil {
			file.Close()
		}
		return Attr{}, nil, err
	}
	h := &upHandle{s: s, node: a.Node, write: true}
	h.src.Store(&hsrc{f: file})
	s.register(a.Node, h, fd)
	return a, h, nil
}

func (s *upperState) mkdir(p Node, name string, mode uint32, c Caller) (Attr, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.newEntry(p, name, index.TypeDir, mode, c, func(d upperDirFD, t string) error { return d.mkdir(t, 0o700) })
}

func (s *upperState) mknod(p Node, name string, typ index.Type, mode uint32, major, minor uint32, c Caller) (Attr, error) {
	switch typ {
	case index.TypeFIFO:
		major, minor = 0, 0
	case index.TypeChar:
		if major == 0 && minor == 0 {
			return Attr{}, ErrInvalid // it would be a whiteout
		}
	case index.TypeBlock:
	case index.TypeSocket:
		// What bind(2) of a UNIX socket makes: a socket file (a commit leaves it out, as a tar cannot
		// hold one, and as docker does).
		major, minor = 0, 0
	default:
		return Attr{}, ErrInvalid
	}
	fmtBits := typ.Mode()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	dev := unix.Mkdev(major, minor)
	return s.newEntry(p, name, typ, mode, c, func(d upperDirFD, t string) error { return d.mknod(t, fmtBits|0o600, dev) })
}

func (s *upperState) symlink(p Node, name, target string, c Caller) (Attr, error) {
	if target == "" || strings.IndexByte(target, 0) >= 0 {
		return Attr{}, ErrInvalid
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.newEntry(p, name, index.TypeSymlink, 0o777, c, func(d upperDirFD, t string) error { return d.symlink(target, t) })
}

func (s *upperState) link(target, np Node, nn string) (Attr, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := checkNewName(nn); err != nil {
		return Attr{}, err
	}
	ta, err := s.attrLocked(target)
	if err != nil {
		return Attr{}, err
	}
	if ta.Type == index.TypeDir {
		return Attr{}, ErrIsDir
	}
	if _, err := s.freeIn(np, nn); err != nil {
		return Attr{}, err
	}
	if err := s.copyUp(target); err != nil {
		return Attr{}, err
	}
	if err := s.ensureDir(np); err != nil {
		return Attr{}, err
	}
	r, _ := s.get(target)
	if len(r.locs) == 0 {
		return Attr{}, ErrNotExist
	}
	td, err := s.dirOf(r.locs[0].parent, false)
	if err != nil {
		return Attr{}, err
	}
	defer td.close()
	nd, err := s.dirOf(np, false)
	if err != nil {
		return Attr{}, err
	}
	defer nd.close()
	pr, _ := s.get(np)
	var st unix.Stat_t
	kind, err := s.classify(nd, nn, &st, pr.xwh)
	if err != nil {
		return Attr{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if kind == upperWhiteout {
		tmp, err := nd.makeTemp(func(t string) error { return td.link(r.locs[0].name, nd, t) })
		if err != nil {
			return Attr{}, err
		}
		if err := nd.rename(tmp, nd, nn, 0); err != nil {
			nd.unlink(tmp, false)
			return Attr{}, err
		}
	} else if err := td.link(r.locs[0].name, nd, nn); err != nil {
		return Attr{}, err
	}
	s.addLoc(target, nameLoc{np, nn})
	if err := nd.stat(nn, &st); err != nil {
		return Attr{}, err
	}
	return s.attrOf(target, &st), nil
}

// whiteoutAt makes name of upper directory d (of node p) a whiteout.
func (s *upperState) whiteoutAt(p Node, d upperDirFD, name string) error {
	x, err := d.whiteout(name)
	if x {
		t := true
		s.setFlags(p, nil, &t)
	}
	return err
}

// replaceWithWhiteout replaces entry name of upper directory d (of node p) by a whiteout, atomically.
func (s *upperState) replaceWithWhiteout(p Node, d upperDirFD, name string, dir bool) error {
	var x bool
	tmp, err := d.makeTemp(func(t string) error {
		var err error
		x, err = d.whiteout(t)
		return err
	})
	if err != nil {
		return err
	}
	if x {
		t := true
		s.setFlags(p, nil, &t)
	}
	if !dir {
		if err := d.rename(tmp, d, name, 0); err != nil {
			d.unlink(tmp, false)
			return err
		}
		return nil
	}
	if err := d.rename(tmp, d, name, unix.RENAME_EXCHANGE); err != nil {
		d.unlink(tmp, false)
		return err
	}
	if err := d.unlink(tmp, true); err != nil {
		s.log.Warn("overlay: removing a directory replaced by a whiteout", "path", d.path(tmp), "err", err)
	}
	return nil
}

func (s *upperState) unlink(p Node, name string) error { return s.remove(p, name, false) }

func (s *upperState) rmdir(p Node, name string) error { return s.remove(p, name, true) }

// remove is unlink (dir false) and rmdir (dir true), one rule: the name goes from the upper directory,
// and a whiteout takes its place where the layers show something under it.
func (s *upperState) remove(p Node, name string, dir bool) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	a, err := s.checkRemove(p, name, dir)
	if err != nil {
		return err
	}
	n := a.Node
	if !dir && !s.has(n) && s.v.nlink(n) > 1 {
		// Keep the other names of a hard-linked lower file one node: copy them all up first.
		if err := s.copyUp(n); err != nil {
			return err
		}
	}
	if err := s.ensureDir(p); err != nil {
		return err
	}
	pd, err := s.dirOf(p, false)
	if err != nil {
		return err
	}
	defer pd.close()
	pr, _ := s.get(p)
	lowerHas := s.lowerHas(p, name)
	var st unix.Stat_t
	kind, err := s.classify(pd, name, &st, pr.xwh)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch kind {
	case upperEntry:
		if dir {
			if err := s.clearDir(n); err != nil {
				return err
			}
		}
		if lowerHas {
			err = s.replaceWithWhiteout(p, pd, name, dir)
		} else {
			err = pd.unlink(name, dir)
		}
		if err != nil {
			return err
		}
		if dir {
			s.dropDir(n, nameLoc{p, name})
		} else {
			s.dropLoc(n, nameLoc{p, name}, st.Nlink <= 1)
		}
		return nil
	case upperAbsent:
		return s.whiteoutAt(p, pd, name)
	}
	return ErrNotExist
}

// checkRemove looks name of p up and makes the checks of unlink(2) (dir false) or rmdir(2) (dir true).
func (s *upperState) checkRemove(p Node, name string, dir bool) (Attr, error) {
	a, err := s.lookupLocked(p, name)
	if err != nil {
		return Attr{}, err
	}
	switch {
	case dir && a.Type != index.TypeDir:
		return Attr{}, ErrNotDir
	case !dir && a.Type == index.TypeDir:
		return Attr{}, ErrIsDir
	case dir:
		if d, err := s.readDirLocked(a.Node); err != nil {
			return Attr{}, err
		} else if d.Len() > 0 {
			return Attr{}, ErrNotEmpty
		}
	}
	return a, nil
}

// clearDir removes what upper directory n holds besides its merged entries (whiteouts, leftover
// temporary entries); ErrNotEmpty when it holds anything else.
func (s *upperState) clearDir(n Node) error {
	r, _ := s.get(n)
	ents, err := s.listUpperAll(n)
	if err != nil {
		return err
	}
	d, err := s.dirOf(n, false)
	if err != nil {
		return err
	}
	defer d.close()
	for _, name := range ents {
		if !strings.HasPrefix(name, whPrefix) {
			var st unix.Stat_t
			kind, err := s.classify(d, name, &st, r.xwh)
			if err != nil {
				return err
			}
			if kind == upperEntry {
				return ErrNotEmpty
			}
		}
		err := d.unlink(name, false)
		if errors.Is(err, unix.EISDIR) {
			err = d.unlink(name, true)
		}
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return err
		}
	}
	return nil
}

// listUpperAll lists every name of upper directory n.
func (s *upperState) listUpperAll(n Node) ([]string, error) {
	d, err := s.dirOf(n, true)
	if err != nil {
		return nil, err
	}
	defer d.close()
	var names []string
	err = getdents(d.fd, func(_ uint64, _ uint8, name string) bool {
		names = append(names, name)
		return true
	})
	if err != nil {
		return nil, d.err("readdir", "", err)
	}
	return names, nil
}

// dropDir forgets directory n, removed from name l.
func (s *upperState) dropDir(n Node, l nameLoc) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.nsGen.Add(2)
	if s.byName[l] == n {
		delete(s.byName, l)
	}
	delete(s.recs, n)
}

// isAncestor reports whether directory a is n or one of n's parents.
func (s *upperState) isAncestor(a, n Node) bool {
	if a == n || a == Root {
		return true
	}
	pa, pn := s.curPath(a), s.curPath(n)
	return pn == pa || strings.HasPrefix(pn, pa+"/")
}

// makeComplete copies up everything the layers show below directory d, so that its upper directory
// holds the whole merged directory and can move where no lower directory shows through.
func (s *upperState) makeComplete(d Node) error {
	if err := s.ensureDir(d); err != nil {
		return err
	}
	if s.lowerOf(d) == nil {
		return nil
	}
	s.completed = append(s.completed, d)
	dir, err := s.readDirLocked(d)
	if err != nil {
		return err
	}
	for i := 0; i < dir.Len(); i++ {
		e := dir.Entry(i)
		if e.Type == index.TypeDir {
			err = s.makeComplete(e.Node)
		} else {
			err = s.copyUp(e.Node)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// prepareMove makes node n (attributes a) ready to move in the upper directory.
func (s *upperState) prepareMove(a Attr) error {
	if a.Type == index.TypeDir {
		return s.makeComplete(a.Node)
	}
	return s.copyUp(a.Node)
}

// renameOp is one rename: what checkRename found, then what planRename read of the upper directory.
type renameOp struct {
	from, to    nameLoc
	src, dst    Attr
	exists      bool // dst names an entry of the view
	exch        bool // RenameExchange
	srcOpaque   bool // src is a directory landing where the layers show one
	dstOpaque   bool // likewise dst, exchanged onto from
	needWh      bool // the layers show something at from once src has left it
	dkind       upperKind
	dstSt       unix.Stat_t
	dstDirXattr bool // to's directory may hold xattr whiteouts
}

func (s *upperState) rename(op Node, on string, np Node, nn string, flags RenameFlags) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	defer s.notifyCompleted()
	r, err := s.checkRename(nameLoc{op, on}, nameLoc{np, nn}, flags)
	if err != nil || r == nil {
		return err
	}
	if err := s.prepareRename(r); err != nil {
		return err
	}
	od, err := s.dirOf(op, false)
	if err != nil {
		return err
	}
	defer od.close()
	nd, err := s.dirOf(np, false)
	if err != nil {
		return err
	}
	defer nd.close()
	if err := s.planRename(r, nd); err != nil {
		return err
	}
	return s.applyRename(r, od, nd)
}

// notifyCompleted tells OnDirCopyUp of the directories made complete by the rename that ends: they no
// longer merge a lower one where they are now.
func (s *upperState) notifyCompleted() {
	if fn := s.onDirCopyUp.Load(); fn != nil {
		for _, n := range s.completed {
			(*fn)(n)
		}
	}
	s.completed = s.completed[:0]
}

// checkRename makes the checks of rename(2), in its order, and looks up both names. A nil renameOp
// without an error means there is nothing to do.
func (s *upperState) checkRename(from, to nameLoc, flags RenameFlags) (*renameOp, error) {
	if flags&^(RenameNoReplace|RenameExchange) != 0 || flags == RenameNoReplace|RenameExchange {
		return nil, ErrInvalid
	}
	if err := checkName(from.name); err != nil {
		return nil, err
	}
	if err := checkNewName(to.name); err != nil {
		return nil, err
	}
	r := &renameOp{from: from, to: to, exch: flags&RenameExchange != 0}
	var err error
	if r.src, err = s.lookupLocked(from.parent, from.name); err != nil {
		return nil, err
	}
	r.dst, err = s.lookupLocked(to.parent, to.name)
	r.exists = err == nil
	if err != nil && !errors.Is(err, ErrNotExist) {
		return nil, err
	}
	src, dst, exists, exch := r.src, r.dst, r.exists, r.exch
	switch {
	case flags&RenameNoReplace != 0 && exists:
		return nil, ErrExist
	case exch && !exists:
		return nil, ErrNotExist
	case src.Type == index.TypeDir && s.isAncestor(src.Node, to.parent):
		return nil, ErrInvalid // a directory cannot move below itself
	case exists && dst.Type == index.TypeDir && s.isAncestor(dst.Node, from.parent):
		if exch {
			return nil, ErrInvalid
		}
		return nil, ErrNotEmpty
	case exists && dst.Node == src.Node:
		return nil, nil // two names of one file (or the same name): nothing to do
	}
	if exists && !exch {
		switch {
		case src.Type == index.TypeDir && dst.Type != index.TypeDir:
			return nil, ErrNotDir
		case src.Type != index.TypeDir && dst.Type == index.TypeDir:
			return nil, ErrIsDir
		case dst.Type == index.TypeDir:
			if d, err := s.readDirLocked(dst.Node); err != nil {
				return nil, err
			} else if d.Len() > 0 {
				return nil, ErrNotEmpty
			}
		}
	}
	return r, nil
}

// prepareRename copies up what the rename moves: both parents, the moved entries (directories made
// complete), and a replaced file with other names, which must keep its data under them.
func (s *upperState) prepareRename(r *renameOp) error {
	if err := s.ensureDir(r.from.parent); err != nil {
		return err
	}
	if err := s.ensureDir(r.to.parent); err != nil {
		return err
	}
	if err := s.prepareMove(r.src); err != nil {
		return err
	}
	if r.exch {
		return s.prepareMove(r.dst)
	}
	if r.exists && r.dst.Type != index.TypeDir && !s.has(r.dst.Node) && s.v.nlink(r.dst.Node) > 1 {
		return s.copyUp(r.dst.Node)
	}
	return nil
}

// planRename reads what the move must do in the upper directory: opaque markers, a whiteout left at the
// old name, and what the new name of nd holds now.
func (s *upperState) planRename(r *renameOp, nd upperDirFD) error {
	npr, _ := s.get(r.to.parent)
	r.dstDirXattr = npr.xwh
	// A directory that lands where the layers show a directory hides it: make it opaque.
	r.srcOpaque = r.src.Type == index.TypeDir && s.lowerDirAt(r.to.parent, r.to.name)
	r.dstOpaque = r.exch && r.dst.Type == index.TypeDir && s.lowerDirAt(r.from.parent, r.from.name)
	r.needWh = !r.exch && s.lowerHas(r.from.parent, r.from.name)
	var err error
	r.dkind, err = s.classify(nd, r.to.name, &r.dstSt, npr.xwh)
	return err
}

// applyRename makes the move in the upper directory (od holds the old name, nd the new one) and in the
// records.
func (s *upperState) applyRename(r *renameOp, od, nd upperDirFD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	on, nn := r.from.name, r.to.name
	t := true
	if r.srcOpaque {
		if err := od.setxattr(on, s.fs.ns+xOpaque, []byte("y"), 0); err != nil {
			return err
		}
		s.setFlags(r.src.Node, &t, nil)
	}
	if r.dstOpaque {
		if err := nd.setxattr(nn, s.fs.ns+xOpaque, []byte("y"), 0); err != nil {
			return err
		}
		s.setFlags(r.dst.Node, &t, nil)
	}
	if r.exists && !r.exch && r.dst.Type == index.TypeDir && r.dkind == upperEntry {
		if err := s.clearDir(r.dst.Node); err != nil {
			return err
		}
	}
	if r.exch {
		if err := od.rename(on, nd, nn, unix.RENAME_EXCHANGE); err != nil {
			return err
		}
		s.swapLocs(r.src.Node, r.from, r.dst.Node, r.to)
		if r.src.Type == index.TypeDir {
			s.scrub(nd, nn)
		}
		if r.dst.Type == index.TypeDir {
			s.scrub(od, on)
		}
		return nil
	}
	if err := s.moveEntry(r, od, nd); err != nil {
		return err
	}
	if r.exists && r.dkind == upperEntry {
		if r.dst.Type == index.TypeDir {
			s.dropDir(r.dst.Node, r.to)
		} else {
			s.dropLoc(r.dst.Node, r.to, r.dstSt.Nlink <= 1)
		}
	}
	s.moveLoc(r.src.Node, r.from, r.to)
	if r.src.Type == index.TypeDir {
		s.scrub(nd, nn)
	}
	return nil
}

// moveEntry renames the entry of a rename that is not an exchange, leaving a whiteout at the old name
// when the layers show something there.
func (s *upperState) moveEntry(r *renameOp, od, nd upperDirFD) error {
	op, on, nn := r.from.parent, r.from.name, r.to.name
	switch {
	case r.src.Type == index.TypeDir && r.dkind == upperWhiteout:
		// A directory cannot replace a whiteout file: exchange them, the whiteout lands on the old name.
		if err := od.rename(on, nd, nn, unix.RENAME_EXCHANGE); err != nil {
			return err
		}
		if !r.needWh {
			return od.unlink(on, false)
		}
		if r.dstDirXattr {
			if err := od.markXwh(); err != nil {
				return err
			}
			t := true
			s.setFlags(op, nil, &t)
		}
		return nil
	case r.needWh && !s.fs.xwh:
		err := od.rename(on, nd, nn, unix.RENAME_WHITEOUT)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EPERM) {
			if err = od.rename(on, nd, nn, 0); err == nil {
				err = s.whiteoutAt(op, od, on)
			}
		}
		return err
	default:
		if err := od.rename(on, nd, nn, 0); err != nil {
			return err
		}
		if r.needWh {
			return s.whiteoutAt(op, od, on)
		}
		return nil
	}
}

// scrub removes the whiteouts below directory name of d, which has just moved: nothing of the layers
// shows below it any more (it was made complete, and is opaque where a lower directory shows), and
// overlayfs lists the whiteouts of a directory that does not merge a lower one.
func (s *upperState) scrub(d upperDirFD, name string) {
	fd, err := d.openChild(name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		s.log.Warn("overlay: removing stale whiteouts", "path", d.path(name), "err", err)
		return
	}
	sub := upperDirFD{u: s.fs, fd: fd, rel: d.path(name)}
	defer sub.close()
	var names, dirs []string
	err = getdents(fd, func(_ uint64, dt uint8, n string) bool {
		switch dt {
		case unix.DT_DIR:
			dirs = append(dirs, n)
		case unix.DT_CHR, unix.DT_REG, unix.DT_UNKNOWN:
			names = append(names, n)
		}
		return true
	})
	if err != nil {
		s.log.Warn("overlay: removing stale whiteouts", "path", sub.rel, "err", err)
		return
	}
	for _, n := range names {
		var st unix.Stat_t
		if kind, err := s.classify(sub, n, &st, true); err == nil && kind == upperWhiteout && st.Mode&unix.S_IFMT != unix.S_IFSOCK {
			if err := sub.unlink(n, false); err != nil {
				s.log.Warn("overlay: removing a stale whiteout", "path", sub.path(n), "err", err)
			}
		}
	}
	for _, n := range dirs {
		s.scrub(sub, n)
	}
}

// upTarget makes node n upper (copying it up) and returns where to reach it. Caller holds wmu.
func (s *upperState) upTarget(n Node) (upperDirFD, string, error) {
	if err := s.copyUp(n); err != nil {
		return upperDirFD{}, "", err
	}
	return s.target(n)
}

func (s *upperState) setAttr(n Node, in SetAttrIn) (Attr, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	a, err := s.attrLocked(n)
	if err != nil {
		return Attr{}, err
	}
	if in.Size != nil {
		switch {
		case a.Type == index.TypeDir:
			return Attr{}, ErrIsDir
		case a.Type != index.TypeRegular || *in.Size < 0:
			return Attr{}, ErrInvalid
		}
	}
	keep := int64(-1)
	if in.Size != nil {
		keep = *in.Size
	}
	if err := s.copyUpKeep(n, keep); err != nil {
		return Attr{}, err
	}
	d, name, err := s.target(n)
	if err != nil {
		return Attr{}, err
	}
	defer d.close()
	if in.Size != nil {
		if err := s.truncate(d, name, *in.Size); err != nil {
			return Attr{}, err
		}
	}
	if in.UID != nil || in.GID != nil {
		uid, gid := -1, -1
		if in.UID != nil {
			uid = int(*in.UID)
		}
		if in.GID != nil {
			gid = int(*in.GID)
		}
		if err := d.chown(name, uid, gid); err != nil {
			return Attr{}, err
		}
	}
	if in.Mode != nil {
		if err := d.chmod(name, *in.Mode&0o7777); err != nil {
			return Attr{}, err
		}
	}
	if in.Atime != nil || in.Mtime != nil {
		if err := d.utimes(name, in.Atime, in.Mtime); err != nil {
			return Attr{}, err
		}
	}
	var st unix.Stat_t
	if err := d.stat(name, &st); err != nil {
		return Attr{}, err
	}
	return s.attrOf(n, &st), nil
}

// truncate sets the size of regular file name of d (d itself, an open file, when name is "").
func (s *upperState) truncate(d upperDirFD, name string, size int64) error {
	if name == "" {
		if err := unix.Ftruncate(d.fd, size); err != nil {
			return d.err("truncate", "", err)
		}
		return nil
	}
	fd, err := d.openChild(name, unix.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Ftruncate(fd, size); err != nil {
		return d.err("truncate", name, err)
	}
	return nil
}

// hasXattr reports whether node n shows extended attribute name.
func (s *upperState) hasXattr(n Node, name string) (bool, error) {
	xs, err := s.xattrsLocked(n)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(xs, func(x index.Xattr) bool { return x.Name == name }), nil
}

func (s *upperState) setXattr(n Node, name string, value []byte, flags int) error {
	if hiddenXattr(name) {
		return ErrReservedName
	}
	if name == "" || flags&^(unix.XATTR_CREATE|unix.XATTR_REPLACE) != 0 {
		return ErrInvalid
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	found, err := s.hasXattr(n, name)
	if err != nil {
		return err
	}
	if flags&unix.XATTR_CREATE != 0 && found {
		return ErrExist
	}
	if flags&unix.XATTR_REPLACE != 0 && !found {
		return ErrNotExist
	}
	d, nm, err := s.upTarget(n)
	if err != nil {
		return err
	}
	defer d.close()
	return d.setxattr(nm, name, value, 0)
}

func (s *upperState) removeXattr(n Node, name string) error {
	if hiddenXattr(name) {
		return ErrNotExist
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	found, err := s.hasXattr(n, name)
	if err != nil {
		return err
	}
	if !found {
		return ErrNotExist
	}
	d, nm, err := s.upTarget(n)
	if err != nil {
		return err
	}
	defer d.close()
	return d.removexattr(nm, name)
}

func (s *upperState) freeze() func() {
	s.wmu.Lock()
	s.opmu.Lock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.opmu.Unlock()
			s.wmu.Unlock()
		})
	}
}

func (s *upperState) sync() error {
	if s.fs.closed.Load() {
		return s.fs.errp("syncfs", ".", os.ErrClosed)
	}
	if err := unix.Syncfs(s.fs.root); err != nil {
		return &os.PathError{Op: "syncfs", Path: s.fs.dir, Err: err}
	}
	return nil
}

// copyReadErr is the one rule of the copy-up loops for a read of n bytes of a member that returned err
// and brought the copy to off of a span that ends at end: nil to go on (or, at end, to stop); an EOF
// before end is a short member (io.ErrUnexpectedEOF), a read of nothing without an error a stuck one.
func copyReadErr(n int, err error, off, end int64) error {
	if err != nil && !(errors.Is(err, io.EOF) && off == end) {
		if errors.Is(err, io.EOF) {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	if n == 0 && err == nil {
		return io.ErrNoProgress
	}
	return nil
}

package overlay

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/internal/ovlfmt"
	"golang.org/x/sys/unix"
)

// OpenUpper opens the upper directory of a writable view, creating it when missing, and checks (or, on
// first use, records) the base it was made over. With opts.ReadOnly it only reads the directory.
func OpenUpper(opts UpperOptions) (*Upper, error) {
	sys, fresh, err := openUpperFS(opts.Dir, opts.Base, opts.ReadOnly, opts.markers)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Upper{sys: sys, base: opts.Base, log: log, fresh: fresh}, nil
}

// upperState is the writable part of a View: the upper directory and what the view remembers of the
// nodes that have an entry in it.
//
// Locking: wmu serializes every change, so that a change sees a stable upper directory from its start
// to its end (it may read without mu). mu orders the directory and the records against readers: readers
// (Lookup, Attr, ReadDir, ...) hold it shared while they read the directory and consult the records; a
// change holds it exclusively while it changes the directory and the records together, but not while
// it copies file data. rmu guards the maps (readers add the records of entries they discover). opmu
// lets Freeze stop writes through open files.
type upperState struct {
	v   *View
	fs  *upperFS
	log *slog.Logger

	wmu  sync.Mutex
	mu   sync.RWMutex
	opmu sync.RWMutex

	rmu    sync.Mutex
	recs   map[Node]*upperRecord
	byName map[nameLoc]Node
	byIno  map[uint64]Node

	next  atomic.Uint64 // the last upper-only node number handed out
	gen   atomic.Uint64 // copy-ups so far: lower handles compare it to switch to the upper copy
	nsGen atomic.Uint64 // moves, opaque markers and removed directories so far (invalidates upperRecord.low)

	linksOnce sync.Once
	byTarget  []int32 // indexes of v.links sorted by target, for finding the names of a node

	onDirCopyUp atomic.Pointer[func(Node)] // see View.OnDirCopyUp
	completed   []Node                     // directories made complete by the running rename (under wmu)
}

// nameLoc is a name in a directory of the view.
type nameLoc struct {
	parent Node
	name   string
}

// upperRecord is what the view remembers about a node with an entry in the upper directory. Its locs slice
// is never modified in place, so a copy of the record taken under rmu stays valid.
type upperRecord struct {
	locs   []nameLoc // its names (directories have one; the root none)
	typ    index.Type
	ino    uint64
	opaque bool      // directories: the upper directory hides the lower one
	xwh    bool      // directories: may hold xattr whiteouts
	files  []fileRef // open upper descriptors, so that an unlinked open file keeps its attributes

	// low is lowerOf's result, valid while the namespace generation is lowGen.
	low    stack
	lowGen uint64
}

// fileRef is an open descriptor of an upper file.
type fileRef struct {
	h  *upHandle
	fd int
}

// newUpperState binds upper directory u to view v.
func newUpperState(v *View, u *Upper) (*upperState, error) {
	if u == nil || u.sys == nil {
		return nil, fmt.Errorf("overlay: upper directory not opened: %w", ErrInvalid)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.bound {
		return nil, fmt.Errorf("overlay: upper directory %s already serves a view: %w", u.sys.dir, ErrInvalid)
	}
	s := &upperState{
		v: v, fs: u.sys, log: u.log,
		recs: map[Node]*upperRecord{}, byName: map[nameLoc]Node{}, byIno: map[uint64]Node{},
	}
	root := s.rootDir()
	if u.fresh {
		xs, _ := v.lowerXattrs(Root)
		if err := s.applyMeta(root, "", v.rootAttr, xs); err != nil {
			return nil, fmt.Errorf("overlay: setting up upper directory %s: %w", u.sys.dir, err)
		}
	}
	_, xwh, err := root.markerFlags("")
	if err != nil {
		return nil, err
	}
	s.recs[Root] = &upperRecord{typ: index.TypeDir, xwh: xwh}
	u.bound = true
	u.fresh = false
	return s, nil
}

// OnDirCopyUp sets fn to be called with every lower directory that a change copies up (while the
// change holds the view's write lock: fn must not call the view). Such a directory's attributes change
// without a change of its own: it then merges the layers' directory with the upper one, and reports
// nlink 1 as overlayfs does instead of its count of subdirectories; a cache of them must be dropped.
//
// A directory that a rename moves stops merging the layers' directories below it: fn is called with
// each directory below it that merged one, once the rename is done.
func (v *View) OnDirCopyUp(fn func(n Node)) {
	if v.up != nil {
		v.up.onDirCopyUp.Store(&fn)
	}
}

// rootDir returns the upper directory's root (not to be closed).
func (s *upperState) rootDir() upperDirFD {
	return upperDirFD{u: s.fs, fd: s.fs.root, rel: ".", borrowed: true}
}

// get returns a copy of node n's record.
func (s *upperState) get(n Node) (upperRecord, bool) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	r, ok := s.recs[n]
	if !ok {
		return upperRecord{}, false
	}
	return *r, true
}

// has reports whether node n has an entry in the upper directory.
func (s *upperState) has(n Node) bool {
	s.rmu.Lock()
	_, ok := s.recs[n]
	s.rmu.Unlock()
	return ok
}

// newNode returns a new upper-only node.
func (s *upperState) newNode() Node { return upperBit | Node(s.next.Add(1)) }

// relPathLocked returns node n's path relative to the upper directory ("." for the root); ok is false
// when n has no name there. rmu is held.
func (s *upperState) relPathLocked(n Node) (string, bool) {
	if n == Root {
		return ".", true
	}
	var parts []string
	for n != Root {
		r := s.recs[n]
		if r == nil || len(r.locs) == 0 || len(parts) > len(s.recs) {
			return "", false
		}
		parts = append(parts, r.locs[0].name)
		n = r.locs[0].parent
	}
	slices.Reverse(parts)
	return strings.Join(parts, "/"), true
}

// dirOf opens upper directory n (for listing when list is set).
func (s *upperState) dirOf(n Node, list bool) (upperDirFD, error) {
	if s.fs.closed.Load() {
		return upperDirFD{}, s.fs.errp("open", ".", os.ErrClosed)
	}
	if n == Root && !list {
		return s.rootDir(), nil
	}
	s.rmu.Lock()
	rel, ok := s.relPathLocked(n)
	s.rmu.Unlock()
	if !ok {
		return upperDirFD{}, ErrNotExist
	}
	return s.fs.openDir(rel, list)
}

// target returns the directory and name through which node n is reached in the upper directory: its
// parent and its (first) name, the root itself with "", or for an unlinked open file its descriptor
// with "".
func (s *upperState) target(n Node) (upperDirFD, string, error) {
	if s.fs.closed.Load() {
		return upperDirFD{}, "", s.fs.errp("open", ".", os.ErrClosed)
	}
	if n == Root {
		return s.rootDir(), "", nil
	}
	r, ok := s.get(n)
	if !ok {
		return upperDirFD{}, "", ErrNotExist
	}
	if len(r.locs) == 0 {
		if len(r.files) > 0 {
			return upperDirFD{u: s.fs, fd: r.files[0].fd, rel: ".", borrowed: true}, "", nil
		}
		return upperDirFD{}, "", ErrNotExist
	}
	d, err := s.dirOf(r.locs[0].parent, false)
	if err != nil {
		return upperDirFD{}, "", err
	}
	return d, r.locs[0].name, nil
}

// upperKind is what a name of an upper directory holds, as classify sees it.
type upperKind uint8

const (
	upperAbsent   upperKind = iota // no entry of that name
	upperWhiteout                  // a whiteout: a 0/0 character device, or an xattr whiteout where allowed
	upperEntry                     // any other entry, which hides the lower one
)

func (k upperKind) String() string {
	switch k {
	case upperAbsent:
		return "absent"
	case upperWhiteout:
		return "whiteout"
	case upperEntry:
		return "entry"
	}
	return fmt.Sprintf("upperKind(%d)", uint8(k))
}

// classify lstat()s name in upper directory d (whose record says xwh) into st and says what it is.
func (s *upperState) classify(d upperDirFD, name string, st *unix.Stat_t, xwh bool) (upperKind, error) {
	if err := d.stat(name, st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return upperAbsent, nil
		}
		return upperAbsent, err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		if ovlfmt.IsWhiteoutDevice(st.Rdev) {
			return upperWhiteout, nil
		}
	case unix.S_IFREG:
		if xwh && st.Size == 0 {
			wh, err := d.isXattrWhiteout(name, st)
			if err != nil {
				return upperAbsent, err
			}
			if wh {
				return upperWhiteout, nil
			}
		}
	}
	return upperEntry, nil
}

// typeOfDT returns the type of a directory entry of d_type dt; 0 when it must be lstat()ed.
func typeOfDT(dt uint8) index.Type {
	switch dt {
	case unix.DT_REG:
		return index.TypeRegular
	case unix.DT_DIR:
		return index.TypeDir
	case unix.DT_LNK:
		return index.TypeSymlink
	case unix.DT_BLK:
		return index.TypeBlock
	case unix.DT_FIFO:
		return index.TypeFIFO
	case unix.DT_SOCK:
		return index.TypeSocket
	}
	return 0
}

// attrOf returns the attributes of node n whose upper file has stat st.
func (s *upperState) attrOf(n Node, st *unix.Stat_t) Attr {
	a := Attr{
		Node: n, Type: index.TypeOfMode(st.Mode), Mode: st.Mode & 0o7777, Nlink: uint32(st.Nlink),
		UID: st.Uid, GID: st.Gid, MtimeSec: st.Mtim.Sec, MtimeNsec: uint32(st.Mtim.Nsec),
		Times: true, AtimeSec: st.Atim.Sec, AtimeNsec: uint32(st.Atim.Nsec), CtimeSec: st.Ctim.Sec, CtimeNsec: uint32(st.Ctim.Nsec),
		Layer: len(s.v.layers),
	}
	switch a.Type {
	case index.TypeRegular:
		a.Size, a.Blocks = st.Size, st.Blocks
	case index.TypeSymlink:
		a.Mode, a.Size = 0o777, st.Size
	case index.TypeDir:
		if s.lowerOf(n) != nil {
			a.Nlink = 1 // merged with the layers' directory: overlayfs reports 1 too
		}
	case index.TypeChar, index.TypeBlock:
		a.Devmajor, a.Devminor = unix.Major(st.Rdev), unix.Minor(st.Rdev)
	}
	return a
}

// lowerOf returns the stack of the layers' directory that directory n shows through, nil when none
// does (n is opaque, below an opaque directory, or has no directory of the layers at its path). For a
// node with an upper entry it is found by n's current path, so that a moved directory never shows what
// lies below its old path.
func (s *upperState) lowerOf(n Node) stack {
	if n == Root {
		return s.v.root
	}
	gen := s.nsGen.Load() | 1 // never 0, the zero value of lowGen
	s.rmu.Lock()
	if s.recs[n] == nil {
		s.rmu.Unlock()
		if n&upperBit != 0 {
			return nil
		}
		st, err := s.v.dirStack(n)
		if err != nil {
			return nil
		}
		return st
	}
	// Walk up to the root or to a directory whose stack is remembered, then down again.
	var chain []*upperRecord
	var names []string
	st := s.v.root
	for cur := n; cur != Root; {
		r := s.recs[cur]
		if r == nil || r.typ != index.TypeDir || r.opaque || len(r.locs) == 0 || len(chain) > len(s.recs) {
			s.rmu.Unlock()
			return nil
		}
		if r.lowGen == gen {
			st = r.low
			break
		}
		chain = append(chain, r)
		names = append(names, r.locs[0].name)
		cur = r.locs[0].parent
	}
	s.rmu.Unlock()
	lows := make([]stack, len(chain))
	for i := len(chain) - 1; i >= 0 && st != nil; i-- {
		r, ok := s.v.child(st, names[i], false)
		if !ok || r.dir == nil {
			st = nil
			break
		}
		st = r.dir
		lows[i] = st
	}
	s.rmu.Lock()
	if s.nsGen.Load()|1 == gen {
		for i, r := range chain {
			r.low, r.lowGen = lows[i], gen
		}
	}
	s.rmu.Unlock()
	if len(chain) > 0 {
		return lows[0]
	}
	return st
}

// lowerType returns the type of what the layers show called name in directory p's lower directory,
// and whether they show anything there.
func (s *upperState) lowerType(p Node, name string) (index.Type, bool) {
	low := s.lowerOf(p)
	if low == nil {
		return 0, false
	}
	r, ok := s.v.child(low, name, false)
	if !ok {
		return 0, false
	}
	return r.e.Type, true
}

// lowerHas reports whether the layers show something called name in directory p's lower directory.
func (s *upperState) lowerHas(p Node, name string) bool {
	_, ok := s.lowerType(p, name)
	return ok
}

// lowerDirAt reports whether the layers show a directory called name in directory p's lower directory.
func (s *upperState) lowerDirAt(p Node, name string) bool {
	t, ok := s.lowerType(p, name)
	return ok && t == index.TypeDir
}

// lowerHint is what the layers show under a name: a node and its type.
type lowerHint struct {
	node Node
	typ  index.Type
	ok   bool
}

// nodeAt returns the node of the upper entry called name (type typ, inode ino) in directory p, whose
// upper directory d is open; an entry not yet known gets a record. A known name keeps its node; another
// name of a known inode shares its node; otherwise the entry takes the node the layers show at that
// path when it is the same kind of thing with one name (a directory must not be opaque), else a new
// upper-only node.
func (s *upperState) nodeAt(p Node, name string, typ index.Type, ino uint64, d upperDirFD, hint *lowerHint) (Node, error) {
	key := nameLoc{p, name}
	s.rmu.Lock()
	n, ok := s.knownLocked(key, typ, ino)
	s.rmu.Unlock()
	if ok {
		return n, nil
	}
	var opaque, xwh bool
	if typ == index.TypeDir {
		var err error
		if opaque, xwh, err = d.markerFlags(name); err != nil {
			return 0, err
		}
	}
	var h lowerHint
	if hint != nil {
		h = *hint
	} else if low := s.lowerOf(p); low != nil {
		if r, ok := s.v.child(low, name, false); ok {
			h.node, h.typ, h.ok = s.v.foundNode(r)
		}
	}
	adopt := h.ok && h.typ == typ && h.node&upperBit == 0 &&
		(typ == index.TypeDir && !opaque || typ != index.TypeDir && s.v.nlink(h.node) == 1)
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if n, ok := s.knownLocked(key, typ, ino); ok {
		return n, nil
	}
	if adopt && s.recs[h.node] == nil {
		n = h.node
	} else {
		n = s.newNode()
	}
	s.recs[n] = &upperRecord{locs: []nameLoc{key}, typ: typ, ino: ino, opaque: opaque, xwh: xwh}
	s.byName[key] = n
	if typ != index.TypeDir {
		s.byIno[ino] = n
	}
	return n, nil
}

// knownLocked returns the node of a known name, or of a known inode (adding the name to it). rmu is
// held.
func (s *upperState) knownLocked(key nameLoc, typ index.Type, ino uint64) (Node, bool) {
	if n, ok := s.byName[key]; ok {
		return n, true
	}
	if typ == index.TypeDir {
		return 0, false
	}
	n, ok := s.byIno[ino]
	if !ok {
		return 0, false
	}
	r := s.recs[n]
	if r == nil || r.typ != typ {
		return 0, false
	}
	r.locs = append(slices.Clip(r.locs), key)
	s.byName[key] = n
	return n, true
}

// addRec records node n with names locs.
func (s *upperState) addRec(n Node, locs []nameLoc, typ index.Type, ino uint64, opaque bool) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	r := s.recs[n]
	if r == nil {
		r = &upperRecord{}
		s.recs[n] = r
	}
	r.locs, r.typ, r.ino, r.opaque = locs, typ, ino, opaque
	for _, l := range locs {
		s.byName[l] = n
	}
	if typ != index.TypeDir {
		s.byIno[ino] = n
	}
}

// addLoc gives node n one more name.
func (s *upperState) addLoc(n Node, l nameLoc) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if r := s.recs[n]; r != nil {
		r.locs = append(slices.Clip(r.locs), l)
		s.byName[l] = n
	}
}

// dropLoc removes name l of node n; last says that it was the inode's last link.
func (s *upperState) dropLoc(n Node, l nameLoc, last bool) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if s.byName[l] == n {
		delete(s.byName, l)
	}
	r := s.recs[n]
	if r == nil {
		return
	}
	r.locs = slices.DeleteFunc(slices.Clone(r.locs), func(x nameLoc) bool { return x == l })
	if last && s.byIno[r.ino] == n {
		delete(s.byIno, r.ino)
	}
	if len(r.locs) == 0 && len(r.files) == 0 && n != Root {
		delete(s.recs, n)
	}
}

// moveLoc renames name from of node n to to.
func (s *upperState) moveLoc(n Node, from, to nameLoc) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.nsGen.Add(2)
	if s.byName[from] == n {
		delete(s.byName, from)
	}
	s.byName[to] = n
	if r := s.recs[n]; r != nil {
		locs := slices.Clone(r.locs)
		for i := range locs {
			if locs[i] == from {
				locs[i] = to
			}
		}
		r.locs = locs
	}
}

// swapLocs exchanges name a of node an and name b of node bn.
func (s *upperState) swapLocs(an Node, a nameLoc, bn Node, b nameLoc) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.nsGen.Add(2)
	s.byName[a], s.byName[b] = bn, an
	for _, x := range []struct {
		n        Node
		from, to nameLoc
	}{{an, a, b}, {bn, b, a}} {
		if r := s.recs[x.n]; r != nil {
			locs := slices.Clone(r.locs)
			for i := range locs {
				if locs[i] == x.from {
					locs[i] = x.to
				}
			}
			r.locs = locs
		}
	}
}

// setFlags updates the marker flags of directory n's record.
func (s *upperState) setFlags(n Node, opaque, xwh *bool) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if r := s.recs[n]; r != nil {
		if opaque != nil {
			r.opaque = *opaque
			s.nsGen.Add(2)
		}
		if xwh != nil {
			r.xwh = *xwh
		}
	}
}

// attr returns the attributes of node n.
func (s *upperState) attr(n Node) (Attr, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.attrLocked(n)
}

// attrLocked is attr for callers that hold mu or wmu.
func (s *upperState) attrLocked(n Node) (Attr, error) {
	if !s.has(n) {
		if n&upperBit != 0 {
			return Attr{}, ErrNotExist
		}
		return s.v.lowerAttr(n)
	}
	d, name, err := s.target(n)
	if err != nil {
		return Attr{}, err
	}
	defer d.close()
	var st unix.Stat_t
	if err := d.stat(name, &st); err != nil {
		return Attr{}, err
	}
	return s.attrOf(n, &st), nil
}

// lookup returns the attributes of the entry called name in directory p.
func (s *upperState) lookup(p Node, name string) (Attr, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.lookupLocked(p, name)
}

// lookupLocked is lookup for callers that hold mu or wmu.
func (s *upperState) lookupLocked(p Node, name string) (Attr, error) {
	if err := checkName(name); err != nil {
		return Attr{}, err
	}
	pr, ok := s.get(p)
	if !ok {
		if p&upperBit != 0 {
			return Attr{}, ErrNotExist
		}
		st, err := s.v.dirStack(p)
		if err != nil {
			return Attr{}, err
		}
		return s.lowerChild(st, name)
	}
	if pr.typ != index.TypeDir {
		return Attr{}, ErrNotDir
	}
	if p != Root && len(pr.locs) == 0 {
		return Attr{}, ErrNotExist
	}
	d, err := s.dirOf(p, false)
	if err != nil {
		return Attr{}, err
	}
	defer d.close()
	var st unix.Stat_t
	kind, err := s.classify(d, name, &st, pr.xwh)
	if err != nil {
		return Attr{}, err
	}
	switch kind {
	case upperEntry:
		n, err := s.nodeAt(p, name, index.TypeOfMode(st.Mode), st.Ino, d, nil)
		if err != nil {
			return Attr{}, err
		}
		return s.attrOf(n, &st), nil
	case upperWhiteout:
		return Attr{}, ErrNotExist
	}
	low := s.lowerOf(p)
	if low == nil {
		return Attr{}, ErrNotExist
	}
	return s.lowerChild(low, name)
}

// lowerChild returns the attributes of what the layers show as name in directory stack st.
func (s *upperState) lowerChild(st stack, name string) (Attr, error) {
	r, ok := s.v.child(st, name, false)
	if !ok {
		return Attr{}, ErrNotExist
	}
	n, _, ok := s.v.foundNode(r)
	if !ok {
		return Attr{}, ErrNotExist
	}
	if r.dir != nil {
		f, _, _ := s.v.owner(r.dir)
		s.v.cache.put(f, r.dir)
	}
	if s.has(n) {
		return s.attrLocked(n)
	}
	return s.v.lowerAttr(n)
}

// upperEnt is one entry of an upper directory listing.
type upperEnt struct {
	name string
	ino  uint64
	typ  index.Type
	wh   bool
}

// listUpper lists upper directory n (whose record is r): every entry but temporary ones, whiteouts
// marked, sorted by name.
func (s *upperState) listUpper(n Node, r upperRecord) ([]upperEnt, error) {
	d, err := s.dirOf(n, true)
	if err != nil {
		return nil, err
	}
	defer d.close()
	var ents []upperEnt
	err = getdents(d.fd, func(ino uint64, dt uint8, name string) bool {
		if !strings.HasPrefix(name, whPrefix) {
			ents = append(ents, upperEnt{name: name, ino: ino, typ: typeOfDT(dt)})
		}
		return true
	})
	if err != nil {
		return nil, d.err("readdir", "", err)
	}
	for i := range ents {
		e := &ents[i]
		if e.typ != 0 && !(e.typ == index.TypeRegular && r.xwh) {
			continue
		}
		var st unix.Stat_t
		kind, err := s.classify(d, e.name, &st, r.xwh)
		if err != nil {
			return nil, err
		}
		e.wh = kind == upperWhiteout
		e.typ = index.TypeOfMode(st.Mode)
		if kind == upperAbsent {
			e.wh, e.typ = true, 0 // gone meanwhile: shows nothing
		}
	}
	slices.SortFunc(ents, func(a, b upperEnt) int { return strings.Compare(a.name, b.name) })
	return ents, nil
}

// readDir returns the merged listing of directory n.
func (s *upperState) readDir(n Node) (*Dir, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.readDirLocked(n)
}

// readDirLocked is readDir for callers that hold mu or wmu.
func (s *upperState) readDirLocked(n Node) (*Dir, error) {
	r, ok := s.get(n)
	if !ok {
		if n&upperBit != 0 {
			return nil, ErrNotExist
		}
		st, err := s.v.dirStack(n)
		if err != nil {
			return nil, err
		}
		return &Dir{v: s.v, items: s.v.mergeStack(st)}, nil
	}
	if r.typ != index.TypeDir {
		return nil, ErrNotDir
	}
	if n != Root && len(r.locs) == 0 {
		return nil, ErrNotExist
	}
	ents, err := s.listUpper(n, r)
	if err != nil {
		return nil, err
	}
	var low []dirItem
	if st := s.lowerOf(n); st != nil {
		low = s.v.mergeStack(st)
	}
	d := &Dir{v: s.v, items: make([]dirItem, 0, len(ents)+len(low))}
	var pd upperDirFD
	defer func() { pd.close() }()
	j := 0
	for _, e := range ents {
		for j < len(low) && d.name(low[j]) < e.name {
			d.items = append(d.items, low[j])
			j++
		}
		var hint lowerHint
		if j < len(low) && d.name(low[j]) == e.name {
			hint = lowerHint{node: low[j].node, typ: low[j].typ, ok: true}
			j++
		}
		if e.wh || e.typ == 0 {
			continue
		}
		if pd.u == nil {
			if pd, err = s.dirOf(n, false); err != nil {
				return nil, err
			}
		}
		node, err := s.nodeAt(n, e.name, e.typ, e.ino, pd, &hint)
		if err != nil {
			return nil, err
		}
		d.items = append(d.items, dirItem{node: node, id: index.ID(len(d.names)), layer: upperItem, typ: e.typ})
		d.names = append(d.names, e.name)
	}
	d.items = append(d.items, low[j:]...)
	return d, nil
}

// readlink returns the target of symlink n.
func (s *upperState) readlink(n Node) (string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.get(n)
	if !ok {
		if n&upperBit != 0 {
			return "", ErrNotExist
		}
		return s.v.lowerReadlink(n)
	}
	if r.typ != index.TypeSymlink {
		return "", ErrInvalid
	}
	d, name, err := s.target(n)
	if err != nil {
		return "", err
	}
	defer d.close()
	return d.readlink(name)
}

// xattrs returns the extended attributes of node n, without the markers.
func (s *upperState) xattrs(n Node) ([]index.Xattr, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.xattrsLocked(n)
}

// xattrsLocked is xattrs for callers that hold mu or wmu.
func (s *upperState) xattrsLocked(n Node) ([]index.Xattr, error) {
	if !s.has(n) {
		if n&upperBit != 0 {
			return nil, ErrNotExist
		}
		return s.v.lowerXattrs(n)
	}
	d, name, err := s.target(n)
	if err != nil {
		return nil, err
	}
	defer d.close()
	names, vals, err := d.xattrs(name)
	if err != nil {
		return nil, err
	}
	var out []index.Xattr
	for i, x := range names {
		if !hiddenXattr(x) {
			out = append(out, index.Xattr{Name: x, Value: vals[i]})
		}
	}
	slices.SortFunc(out, func(a, b index.Xattr) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// path returns a path of node n for messages.
func (s *upperState) path(n Node) (string, bool) {
	if n == Root {
		return "", true
	}
	s.rmu.Lock()
	if _, ok := s.recs[n]; ok {
		p, ok := s.relPathLocked(n)
		s.rmu.Unlock()
		if !ok {
			return "", true // an unlinked file that is still open
		}
		return p, true
	}
	s.rmu.Unlock()
	if n&upperBit != 0 {
		return "", false
	}
	return s.v.lowerPath(n)
}

// curPath returns node n's current path in the view ("" for the root).
func (s *upperState) curPath(n Node) string {
	p, _ := s.path(n)
	return p
}

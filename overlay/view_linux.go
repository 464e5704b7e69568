package overlay

import (
	"errors"
	"fmt"
	iofs "io/fs"
	"log/slog"
	"os"
	"strings"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/internal/ovlfmt"
)

// Node identifies a node of a View. Root is the root directory; any other node is
// uint64(layer+1)<<32 | uint64(entry) of the layer entry that owns it: for a directory, the topmost entry
// of its merged stack that is not implied (the topmost entry when all are); for a hard link, the entry
// of its resolved target; otherwise the visible entry itself. Nodes carry no state: everything about a
// node is recomputed from it. Nodes with the top bit set name entries made in a writable upper directory
// (see OpenUpper); a lower node keeps its number when it is copied up, renamed or moved. A view never
// hands out a node with bit 62 set and bit 63 clear: views stacked on this one (package layertree) number
// their own nodes there.
type Node uint64

// Root is the root directory's node.
const Root Node = 1

// upperBit marks the nodes of entries made in the upper directory.
const upperBit Node = 1 << 63

// MaxLayers is the largest number of layers a View accepts.
const MaxLayers = 1<<16 - 1

// Errors of a View. Lookups that find nothing return ErrNotExist itself (not wrapped) so that the hot
// path does not allocate; compare with errors.Is all the same.
var (
	// ErrNotExist means that no entry of that name is visible in the merged view.
	ErrNotExist = iofs.ErrNotExist
	// ErrNotDir means that a directory operation was asked of a node that is not a directory.
	ErrNotDir = errors.New("overlay: not a directory")
	// ErrIsDir means that a file operation was asked of a directory.
	ErrIsDir = errors.New("overlay: is a directory")
	// ErrInvalid means a node that the view never hands out, a bad name, or an operation that does not
	// apply to the node's type.
	ErrInvalid = errors.New("overlay: invalid argument")
	// ErrNameTooLong means a name longer than Linux allows (NAME_MAX, 255 bytes), or a symlink whose
	// target readlink cannot return (PATH_MAX, 4096 bytes with its NUL).
	ErrNameTooLong = errors.New("overlay: name too long")
)

// Linux limits. A member whose name is longer than MaxName is absent from the view: not listed, not
// exported, not in the change set, and a lookup gives ErrNameTooLong (no Linux file system can hold
// it, so nothing could open it). A symlink whose target is longer than MaxLinkTarget is listed and
// stats with its true size, but Readlink gives ErrNameTooLong (the kernel cannot pass it on); export
// writes its target verbatim.
const (
	MaxName       = 255
	MaxLinkTarget = 4095
)

// Options configure a View.
type Options struct {
	// Logger receives warnings about hard links that cannot be resolved; nil discards them.
	Logger *slog.Logger
	// Upper makes the view writable over an upper directory (see OpenUpper); nil gives a read-only view.
	// An Upper serves one view only.
	Upper *Upper
}

// Attr is the metadata of a node.
type Attr struct {
	Node Node
	// Type is the node's type; never index.TypeHardlink (hard links show their target).
	Type index.Type
	// Mode holds the permission, setuid, setgid and sticky bits (07777).
	Mode uint32
	// Nlink is the number of names in the merged view that resolve to the node. Directories count as
	// overlayfs counts them: 2 plus their subdirectories when one layer or the upper directory alone
	// holds them, 1 when they are merged from several (counting would cost a listing of each).
	Nlink     uint32
	UID, GID  uint32
	Size      int64 // regular files: data size; symlinks: length of the target; directories: 0
	Blocks    int64 // 512-byte units: ceil(Size/512); for a sparse file, the 4 KiB blocks its data touches
	MtimeSec  int64
	MtimeNsec uint32
	// Times says that AtimeSec, AtimeNsec, CtimeSec and CtimeNsec hold the access and change times:
	// those of an entry of the upper directory (its file's own). Layers keep neither: their entries show
	// the modification time for both.
	Times     bool
	AtimeSec  int64
	AtimeNsec uint32
	CtimeSec  int64
	CtimeNsec uint32
	// Devmajor and Devminor are the device numbers of character and block devices.
	Devmajor, Devminor uint32
	// Layer is the index of the layer whose entry supplied the attributes, -1 when they are synthesized
	// (a directory implied in every layer that has it), and the number of layers when they come from the
	// upper directory.
	Layer int
}

// DirEntry is one entry of a merged directory listing.
type DirEntry struct {
	Name string
	Node Node
	Type index.Type
}

// File is the data of an open regular file.
type File interface {
	// ReadAt reads from the file's data; it returns io.EOF at the end like an io.ReaderAt.
	ReadAt(p []byte, off int64) (int, error)
	// Size returns the data size.
	Size() int64
	// FileRange returns a plain file range holding the data, when there is one, for zero-copy reads.
	FileRange() (f *os.File, off int64, ok bool)
	// Close releases the file; every File that Open returned must be closed once.
	Close() error
}

// View is the read-only union of ordered image layers. It is safe for concurrent use. Its memory does not
// grow with the number of nodes used: besides the per-hard-link tables built by New it keeps only a
// bounded cache of directory stacks.
type View struct {
	layers  []Layer
	log     *slog.Logger
	estargz []bool // the layer's root has stargz.index.json: hide the eStargz metadata at its root

	root      stack // the root's merged stack in the full view
	rootAttr  Attr
	rootOwner frame // the root entry that gave the root's attributes
	rootOwned bool

	links  []linkRec  // every hard link of every layer and its resolution, sorted by key
	nlinks []nlinkRec // nodes with more than one visible name, sorted by node

	cache stackCache

	up *upperState // nil: a read-only view
}

// frame is one layer's entry for a path: a member of a directory stack, or the owner of a name.
type frame struct {
	layer uint32
	id    index.ID
}

func (f frame) node() Node { return Node(uint64(f.layer+1)<<32 | uint64(f.id)) }

// stack is the merged stack of a directory: the layers' directory entries for its path, topmost first,
// down to the first opaque marker, whiteout or non-directory that ends it. Stacks are never modified
// once built.
type stack []frame

func (s stack) has(f frame) bool {
	for _, g := range s {
		if g == f {
			return true
		}
	}
	return false
}

// New returns the union of layers, bottom layer first. It resolves every hard link of every layer and
// counts the names of hard-linked nodes; nothing else is walked.
func New(layers []Layer, opts Options) (*View, error) {
	if len(layers) > MaxLayers {
		return nil, fmt.Errorf("overlay: %d layers, at most %d supported: %w", len(layers), MaxLayers, ErrInvalid)
	}
	v := &View{
		layers:  layers,
		log:     opts.Logger,
		estargz: make([]bool, len(layers)),
	}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	for i, l := range layers {
		if l == nil || l.Len() == 0 {
			return nil, fmt.Errorf("overlay: layer %d is empty or nil: %w", i, ErrInvalid)
		}
		if _, ok := l.Lookup(0, stargzIndex); ok {
			v.estargz[i] = true
		}
	}
	v.cache.init(4096)
	v.root = v.rootStack(len(layers) - 1)
	v.rootAttr = Attr{Node: Root, Type: index.TypeDir, Mode: 0o755, Nlink: v.dirNlink(Root, frame{}), Layer: -1}
	for _, f := range v.root {
		e := layers[f.layer].Entry(0)
		if e.Type == index.TypeDir && e.Flags&index.FlagImplied == 0 {
			v.rootOwner, v.rootOwned = f, true
			v.rootAttr = v.attr(Root, f, e)
			break
		}
	}
	v.buildLinks()
	if opts.Upper != nil {
		up, err := newUpperState(v, opts.Upper)
		if err != nil {
			return nil, err
		}
		v.up = up
	}
	return v, nil
}

// rootStack returns the root's stack in the view of layers 0..top.
func (v *View) rootStack(top int) stack {
	var s stack
	for l := top; l >= 0; l-- {
		f := frame{uint32(l), 0}
		s = append(s, f)
		if v.opaque(f, v.layers[l].Entry(0)) {
			break
		}
	}
	return s
}

// Names with a meaning of their own.
const (
	whPrefix     = ovlfmt.WhiteoutPrefix
	aufsPrefix   = ovlfmt.MetaPrefix
	opaqueMarker = ovlfmt.OpaqueMarker
	opaqueXattr  = "trusted." + ovlfmt.Opaque
	stargzIndex  = "stargz.index.json"
)

// isAUFS reports whether name is AUFS metadata (".wh..wh.plnk" and the like): hidden, but usable as a
// component of a hard link's target.
func isAUFS(name string) bool {
	return strings.HasPrefix(name, aufsPrefix) && name != opaqueMarker
}

// isWhiteoutDev reports whether e is an overlayfs-style whiteout: a character device 0/0.
func isWhiteoutDev(e index.Entry) bool {
	return e.Type == index.TypeChar && e.Devmajor == 0 && e.Devminor == 0
}

// hidden reports whether name is eStargz metadata at the root of an eStargz layer, which the view treats
// as absent from that layer.
func (v *View) hidden(f frame, name string) bool {
	if f.id != 0 || !v.estargz[f.layer] {
		return false
	}
	return name == stargzIndex || name == ".prefetch.landmark" || name == ".no.prefetch.landmark"
}

// opaque reports whether directory entry f (with metadata e) hides the lower layers' children: it holds
// ".wh..wh..opq" or carries trusted.overlay.opaque=y.
func (v *View) opaque(f frame, e index.Entry) bool {
	l := v.layers[f.layer]
	if _, ok := l.Lookup(f.id, opaqueMarker); ok {
		return true
	}
	if e.Flags&index.FlagXattrs != 0 {
		for _, x := range l.Xattrs(f.id) {
			if x.Name == opaqueXattr && string(x.Value) == "y" {
				return true
			}
		}
	}
	return false
}

// found is the entry that owns a name of a merged directory.
type found struct {
	top frame       // the topmost visible entry for the name (a hard link entry is not resolved)
	e   index.Entry // its metadata
	dir stack       // when e is a directory, its merged stack
}

// child finds name in the merged directory st. With aufs, names of AUFS metadata are ordinary names (for
// resolving hard links); the caller has already refused whiteout names it does not want.
func (v *View) child(st stack, name string, aufs bool) (found, bool) {
	wh := whPrefix + name
	for i, f := range st {
		l := v.layers[f.layer]
		if !v.hidden(f, name) {
			if id, ok := l.Lookup(f.id, name); ok {
				e := l.Entry(id)
				if isWhiteoutDev(e) && !(aufs && isAUFS(name)) {
					return found{}, false
				}
				r := found{top: frame{f.layer, id}, e: e}
				if e.Type == index.TypeDir {
					r.dir = v.subStack(st[i:], name, wh, r.top, e)
				}
				return r, true
			}
		}
		if _, ok := l.Lookup(f.id, wh); ok {
			return found{}, false
		}
	}
	return found{}, false
}

// subStack builds the stack of directory name whose topmost entry top (metadata e) is a child of st[0].
func (v *View) subStack(st stack, name, wh string, top frame, e index.Entry) stack {
	out := make(stack, 1, len(st))
	out[0] = top
	if v.opaque(top, e) {
		return out
	}
	if _, ok := v.layers[st[0].layer].Lookup(st[0].id, wh); ok {
		return out
	}
	for _, f := range st[1:] {
		l := v.layers[f.layer]
		if !v.hidden(f, name) {
			if id, ok := l.Lookup(f.id, name); ok {
				e := l.Entry(id)
				if e.Type != index.TypeDir {
					break // a non-directory (or an overlay whiteout) replaced everything below
				}
				g := frame{f.layer, id}
				out = append(out, g)
				if v.opaque(g, e) {
					break
				}
			}
		}
		if _, ok := l.Lookup(f.id, wh); ok {
			break
		}
	}
	return out
}

// owner returns the frame that owns directory stack s: its topmost entry that is not implied, else its
// topmost entry; implied reports the latter case.
func (v *View) owner(s stack) (f frame, e index.Entry, implied bool) {
	for _, g := range s {
		e := v.layers[g.layer].Entry(g.id)
		if e.Flags&index.FlagImplied == 0 {
			return g, e, false
		}
	}
	return s[0], v.layers[s[0].layer].Entry(s[0].id), true
}

// frameOf decodes node n (not Root) and returns its entry.
func (v *View) frameOf(n Node) (frame, index.Entry, error) {
	hi := uint64(n >> 32)
	if n&upperBit != 0 || hi == 0 || hi > uint64(len(v.layers)) {
		return frame{}, index.Entry{}, ErrInvalid
	}
	f := frame{uint32(hi - 1), index.ID(uint32(n))}
	l := v.layers[f.layer]
	if uint64(f.id) >= uint64(l.Len()) {
		return frame{}, index.Entry{}, ErrInvalid
	}
	return f, l.Entry(f.id), nil
}

// checkName refuses names that are not one path component and hides every whiteout name.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.IndexByte(name, '/') >= 0 {
		return ErrInvalid
	}
	if len(name) > MaxName {
		return ErrNameTooLong
	}
	if strings.HasPrefix(name, whPrefix) {
		return ErrNotExist
	}
	return nil
}

// Attr returns the attributes of node n.
func (v *View) Attr(n Node) (Attr, error) {
	if v.up != nil {
		return v.up.attr(n)
	}
	return v.lowerAttr(n)
}

// lowerAttr returns the attributes of node n in the layers alone.
func (v *View) lowerAttr(n Node) (Attr, error) {
	if n == Root {
		return v.rootAttr, nil
	}
	f, e, err := v.frameOf(n)
	if err != nil {
		return Attr{}, err
	}
	if e.Type == index.TypeHardlink {
		return Attr{}, ErrInvalid
	}
	return v.attr(n, f, e), nil
}

// attr builds the attributes of node n owned by entry f with metadata e.
func (v *View) attr(n Node, f frame, e index.Entry) Attr {
	a := Attr{Node: n, Type: e.Type, Nlink: 1, Layer: int(f.layer)}
	if e.Type == index.TypeDir && e.Flags&index.FlagImplied != 0 {
		a.Mode, a.Layer = 0o755, -1
		a.Nlink = v.dirNlink(n, f)
		return a
	}
	a.Mode = e.Mode & 0o7777
	a.UID, a.GID = e.UID, e.GID
	a.MtimeSec, a.MtimeNsec = e.MtimeSec, e.MtimeNsec
	switch e.Type {
	case index.TypeRegular:
		a.Size = e.Size
	case index.TypeSymlink:
		// Linux keeps no mode for symlinks: they always show 0777, whatever the tar header says.
		a.Mode = 0o777
		a.Size = int64(len(v.layers[f.layer].LinkName(f.id)))
	case index.TypeChar, index.TypeBlock:
		a.Devmajor, a.Devminor = e.Devmajor, e.Devminor
	}
	if e.Type == index.TypeRegular && a.Size > 0 {
		a.Blocks = (a.Size + 511) / 512
		if e.Flags&index.FlagSparse != 0 {
			a.Blocks = sparseBlocks(v.layers[f.layer], f.id, a.Blocks)
		}
	}
	if e.Type != index.TypeDir {
		a.Nlink = v.nlink(n)
	} else {
		a.Nlink = v.dirNlink(n, f)
	}
	return a
}

// dirNlink returns the link count of lower directory n whose owner is f, as overlayfs reports it: the
// count of the layer's own directory (2 plus its subdirectories) when one layer alone holds the
// directory, 1 when several are merged into it.
func (v *View) dirNlink(n Node, f frame) uint32 {
	var st stack
	if n == Root {
		st = v.root
	} else {
		var err error
		if st, err = v.stackOf(f); err != nil {
			return 1
		}
	}
	if len(st) != 1 {
		return 1
	}
	g := st[0]
	l := v.layers[g.layer]
	first, cnt := l.Children(g.id)
	nl := uint32(2)
	for id := first; id < first+index.ID(cnt); id++ {
		if l.Entry(id).Type == index.TypeDir && !strings.HasPrefix(l.Name(id), whPrefix) && !v.hidden(g, l.Name(id)) {
			nl++
		}
	}
	return nl
}

// Lookup returns the attributes of the entry called name in directory parent. Whiteout names (".wh.*")
// are never found.
func (v *View) Lookup(parent Node, name string) (Attr, error) {
	if err := checkName(name); err != nil {
		return Attr{}, err
	}
	if v.up != nil {
		return v.up.lookup(parent, name)
	}
	st, err := v.dirStack(parent)
	if err != nil {
		return Attr{}, err
	}
	return v.lowerLookup(st, name)
}

// lowerLookup returns the attributes of the entry called name in the merged directory stack st.
func (v *View) lowerLookup(st stack, name string) (Attr, error) {
	r, ok := v.child(st, name, false)
	if !ok {
		return Attr{}, ErrNotExist
	}
	switch r.e.Type {
	case index.TypeDir:
		f, e, _ := v.owner(r.dir)
		v.cache.put(f, r.dir)
		return v.attr(f.node(), f, e), nil
	case index.TypeHardlink:
		t, ok := v.linkTarget(r.top)
		if !ok {
			return Attr{}, ErrNotExist
		}
		return v.attr(t.node(), t, v.layers[t.layer].Entry(t.id)), nil
	}
	return v.attr(r.top.node(), r.top, r.e), nil
}

// dirStack returns the merged stack of directory node n.
func (v *View) dirStack(n Node) (stack, error) {
	if n == Root {
		return v.root, nil
	}
	f, e, err := v.frameOf(n)
	if err != nil {
		return nil, err
	}
	if e.Type != index.TypeDir {
		return nil, ErrNotDir
	}
	return v.stackOf(f)
}

// stackOf returns the merged stack that directory entry f belongs to: from the cache, or by walking up
// f's parents to a cached or root stack and back down, caching every level. It fails with ErrNotExist
// when f is not part of the merged view.
func (v *View) stackOf(f frame) (stack, error) {
	if f.id == 0 {
		if v.root.has(f) {
			return v.root, nil
		}
		return nil, ErrNotExist
	}
	if s, ok := v.cache.get(f); ok {
		return s, nil
	}
	l := v.layers[f.layer]
	chain := []frame{f}
	base := v.root
	for cur := f; ; {
		p := l.Entry(cur.id).Parent
		if uint64(p) >= uint64(l.Len()) || len(chain) > l.Len() {
			return nil, ErrInvalid // a broken table: a parent out of range or a cycle
		}
		pf := frame{f.layer, p}
		if p == 0 {
			if !v.root.has(pf) {
				return nil, ErrNotExist
			}
			break
		}
		if s, ok := v.cache.get(pf); ok {
			base = s
			break
		}
		chain = append(chain, pf)
		cur = pf
	}
	for i := len(chain) - 1; i >= 0; i-- {
		g := chain[i]
		name := l.Name(g.id)
		if strings.HasPrefix(name, whPrefix) {
			return nil, ErrNotExist
		}
		r, ok := v.child(base, name, false)
		if !ok || r.dir == nil || !r.dir.has(g) {
			return nil, ErrNotExist
		}
		v.cache.put(g, r.dir)
		base = r.dir
	}
	return base, nil
}

// foundNode returns the node that a name found in a merged directory shows and its type; ok is false
// for a hard link that does not resolve.
func (v *View) foundNode(r found) (Node, index.Type, bool) {
	switch r.e.Type {
	case index.TypeDir:
		f, _, _ := v.owner(r.dir)
		return f.node(), index.TypeDir, true
	case index.TypeHardlink:
		t, ok := v.linkTarget(r.top)
		if !ok {
			return 0, 0, false
		}
		return t.node(), v.layers[t.layer].Entry(t.id).Type, true
	}
	return r.top.node(), r.e.Type, true
}

// Readlink returns the target of symbolic link n, verbatim.
func (v *View) Readlink(n Node) (string, error) {
	if v.up != nil {
		return v.up.readlink(n)
	}
	return v.lowerReadlink(n)
}

// LinkTarget returns the target of symbolic link n however long it is: Readlink refuses a layer's
// target longer than MaxLinkTarget with ErrNameTooLong (no system call could return it), while a tar
// stream can carry it.
func (v *View) LinkTarget(n Node) (string, error) {
	t, err := v.Readlink(n)
	if errors.Is(err, ErrNameTooLong) {
		return v.lowerLinkTarget(n)
	}
	return t, err
}

// lowerReadlink returns the target of symbolic link n of the layers; ErrNameTooLong when it is longer
// than MaxLinkTarget.
func (v *View) lowerReadlink(n Node) (string, error) {
	t, err := v.lowerLinkTarget(n)
	if err == nil && len(t) > MaxLinkTarget {
		return "", ErrNameTooLong
	}
	return t, err
}

// lowerLinkTarget returns the target of symbolic link n of the layers, however long.
func (v *View) lowerLinkTarget(n Node) (string, error) {
	if n == Root {
		return "", ErrInvalid
	}
	f, e, err := v.frameOf(n)
	if err != nil {
		return "", err
	}
	if e.Type != index.TypeSymlink {
		return "", ErrInvalid
	}
	return v.layers[f.layer].LinkName(f.id), nil
}

// Xattrs returns the extended attributes of node n, without the markers of overlayfs and imgfs
// (trusted.overlay.*, user.overlay.*, and the base record trusted.imgfs.base / user.imgfs.base). The
// result may be shared with the layer: callers must not modify it.
func (v *View) Xattrs(n Node) ([]index.Xattr, error) {
	if v.up != nil {
		return v.up.xattrs(n)
	}
	return v.lowerXattrs(n)
}

// HasXattrs reports whether a node of the view may have extended attributes: always with an upper
// directory; otherwise when a layer holds any (a layer that cannot tell counts as holding some).
func (v *View) HasXattrs() bool {
	if v.up != nil {
		return true
	}
	for _, l := range v.layers {
		if x, ok := l.(interface{ HasXattrs() bool }); !ok || x.HasXattrs() {
			return true
		}
	}
	return false
}

// HasXattr reports whether a node of the view may have the extended attribute called name: always
// with an upper directory; otherwise when a layer may hold it (a layer that cannot tell counts as
// holding it).
func (v *View) HasXattr(name string) bool {
	if v.up != nil {
		return true
	}
	for _, l := range v.layers {
		if x, ok := l.(interface{ HasXattr(string) bool }); !ok || x.HasXattr(name) {
			return true
		}
	}
	return false
}

// hiddenXattr reports whether extended attribute name is a marker that the view never shows (and that
// users may not set): overlayfs's, and imgfs's record of the base. Other names, user.imgfs.* included,
// are ordinary image content.
func hiddenXattr(name string) bool { return ovlfmt.Hidden(name) }

// lowerXattrs returns the extended attributes of node n of the layers.
func (v *View) lowerXattrs(n Node) ([]index.Xattr, error) {
	var f frame
	var e index.Entry
	if n == Root {
		if !v.rootOwned {
			return nil, nil
		}
		f = v.rootOwner
		e = v.layers[f.layer].Entry(f.id)
	} else {
		var err error
		if f, e, err = v.frameOf(n); err != nil {
			return nil, err
		}
	}
	if e.Flags&index.FlagXattrs == 0 || e.Flags&index.FlagImplied != 0 {
		return nil, nil
	}
	xs := v.layers[f.layer].Xattrs(f.id)
	keep := 0
	for _, x := range xs {
		if !hiddenXattr(x.Name) {
			keep++
		}
	}
	if keep == len(xs) {
		return xs, nil
	}
	out := make([]index.Xattr, 0, keep)
	for _, x := range xs {
		if !hiddenXattr(x.Name) {
			out = append(out, x)
		}
	}
	return out, nil
}

// Open returns the data of regular file n, which the caller closes when done. On a writable view a File
// opened on a lower file reads the upper copy once the file has been copied up.
func (v *View) Open(n Node) (File, error) {
	if v.up != nil {
		return v.up.open(n)
	}
	return v.lowerOpen(n)
}

// lowerOpen returns the data of regular file n of the layers.
func (v *View) lowerOpen(n Node) (File, error) {
	if n == Root {
		return nil, ErrIsDir
	}
	f, e, err := v.frameOf(n)
	if err != nil {
		return nil, err
	}
	switch e.Type {
	case index.TypeRegular:
		return &memberFile{l: v.layers[f.layer], id: f.id, size: e.Size}, nil
	case index.TypeDir:
		return nil, ErrIsDir
	}
	return nil, ErrInvalid
}

// lowerPath returns the path of node n's owning entry in its layer.
func (v *View) lowerPath(n Node) (string, bool) {
	if n == Root {
		return "", true
	}
	f, _, err := v.frameOf(n)
	if err != nil {
		return "", false
	}
	return v.layers[f.layer].Path(f.id), true
}

// memberFile is an open regular file: a member of one layer.
type memberFile struct {
	l    Layer
	id   index.ID
	size int64

	holes sparseMap // loaded at the first SeekData
}

func (f *memberFile) ReadAt(p []byte, off int64) (int, error) { return f.l.ReadAt(f.id, p, off) }
func (f *memberFile) Size() int64                             { return f.size }
func (f *memberFile) FileRange() (*os.File, int64, bool)      { return f.l.FileRange(f.id) }
func (f *memberFile) CheckSource() error                      { return checkSource(f.l) }

// Close does nothing: a member file holds nothing of its own (the layer owns the data).
func (f *memberFile) Close() error { return nil }

// CheckSource returns the error of f's CheckSource, when it has one (a file of an index.Layer whose
// archive changed since the layer was opened); a reader of File.FileRange calls it after reading the
// range directly, which bypasses the layer's own check of every read.
func CheckSource(f File) error { return checkSource(f) }

// checkSource returns the error of x's CheckSource, when x has one (index.Layer: the archive changed
// since the layer was opened): used after reading a FileRange directly, which bypasses the layer's
// own check of every read.
func checkSource(x any) error {
	if c, ok := x.(interface{ CheckSource() error }); ok {
		return c.CheckSource()
	}
	return nil
}

// Path returns a path of node n for messages: the path of its owning entry ("a/b/c", "" for the root).
// For a hard-linked file that is the target's own path, which a higher layer may have hidden. ok is false
// for a node the view never hands out. (evidence's image diff names
// the nodes it compares with it.)
func (v *View) Path(n Node) (string, bool) {
	if v.up != nil {
		return v.up.path(n)
	}
	return v.lowerPath(n)
}

package evidence

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/overlay"
)

// Image is one side of an image-to-image diff: its merged view and the diff IDs of the view's layers,
// bottom first. Two members with the same (diff ID, entry) are the same bytes (package index proves a
// layer's diff ID before it serves it), so a layer both images share costs nothing to compare.
type Image struct {
	View    *overlay.View
	DiffIDs []digest.Digest
}

// ChangeKind says how a path differs from image A to image B, with the letters of `docker diff`.
type ChangeKind byte

// Kinds of change.
const (
	Added   ChangeKind = 'A' // the path is in B only
	Changed ChangeKind = 'C' // the path is in both, and its entry or (for a directory) something below it differs
	Deleted ChangeKind = 'D' // the path is in A only
)

// String returns the kind's letter.
func (k ChangeKind) String() string { return string(rune(k)) }

// MarshalText writes the kind as its letter.
func (k ChangeKind) MarshalText() ([]byte, error) { return []byte{byte(k)}, nil }

// FileState is one side's entry for a changed path.
type FileState struct {
	Type     string `json:"type"` // index.Type's name: file, dir, symlink, char, block, fifo, socket
	Mode     string `json:"mode"` // the permission, setuid, setgid and sticky bits, in octal ("4755")
	UID      uint32 `json:"uid"`
	GID      uint32 `json:"gid"`
	Size     int64  `json:"size"`
	Mtime    string `json:"mtime"`            // RFC 3339, UTC, with nanoseconds
	SHA256   string `json:"sha256,omitempty"` // regular files: the data's sha256 (when computed)
	Link     string `json:"link,omitempty"`   // symlinks: the target
	Device   string `json:"device,omitempty"` // devices: "major:minor"
	Layer    int    `json:"layer"`            // the layer (1 = bottom) whose entry it is; 0 when synthesized
	LayerID  string `json:"layerDiffID,omitempty"`
	mode     uint32
	typ      index.Type
	node     overlay.Node
	xattrs   []index.Xattr
	mtimeSec int64
	mtimeNs  uint32
}

// Change is one changed path.
type Change struct {
	// Path is absolute, like "/etc/motd"; the root is never listed.
	Path string     `json:"path"`
	Kind ChangeKind `json:"kind"`
	// Old is the path's entry in A (nil when added), New in B (nil when deleted).
	Old *FileState `json:"old,omitempty"`
	New *FileState `json:"new,omitempty"`
	// Fields names what differs for a change: type, mode, owner, size, mtime (not of directories, as
	// docker diff), content, link, device, xattrs; "contents" for a directory listed because something
	// below it changed.
	Fields []string `json:"fields,omitempty"`
	// Flags mark what an examiner looks at first: a regular file added or changed that is setuid,
	// setgid or executable in B ("setuid", "setgid", "executable"), as container-explorer's drift does.
	Flags []string `json:"flags,omitempty"`
}

// String formats the change as `docker diff` prints it: "C /etc".
func (c Change) String() string { return c.Kind.String() + " " + c.Path }

// DiffOptions configure Diff.
type DiffOptions struct {
	// Hash computes the sha256 of every regular file a change names (for the JSON output); without
	// it only the files whose content decides whether they changed are hashed.
	Hash bool
	// Workers is the number of files hashed at once; 0 means one per core.
	Workers int
}

// Diff returns the file-level differences from image a to image b as `docker diff` lists them, sorted
// by path: a path only in b is Added, and so is everything below an added directory; a path only in a
// is Deleted, a deleted directory once, not its children; a path in both is Changed when its type,
// permission bits, owner, device numbers, symlink target, xattrs or (other than for directories, as
// docker diff) size, mtime or content differ. A directory with a change below it is Changed too (docker
// diff lists it so), unless it is itself added. A path whose type changed from a directory to anything
// else is one Changed line (its old children are gone with it); from anything else to a directory, its
// children are Added. Content is compared by sha256, only for regular files of the same size that are
// not the same member of a layer with the same diff ID on both sides. Views are read, never written.
func Diff(ctx context.Context, a, b Image, opts DiffOptions) ([]Change, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d := &differ{ctx: ctx, cancel: cancel, a: a, b: b, opts: opts, jobs: make(chan hashJobDiff)}
	d.startHashers()
	err := d.dir("", overlay.Root, overlay.Root)
	close(d.jobs)
	d.wg.Wait()
	if d.hashErr != nil {
		err = d.hashErr // the walk's error, if any, is the cancellation it caused
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return nil, err
	}
	out := d.out
	for i := range out {
		c := &out[i]
		if c.Kind == Changed && c.Old.typ == index.TypeRegular && c.New.typ == index.TypeRegular &&
			(c.Old.Size != c.New.Size || c.Old.SHA256 != c.New.SHA256) {
			c.Fields = append(c.Fields, "content")
		}
		c.Flags = flagsOf(c)
	}
	out, err = d.addParents(out)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(x, y Change) int { return strings.Compare(x.Path, y.Path) })
	return out, nil
}

// differ is the state of one Diff.
type differ struct {
	ctx    context.Context
	cancel context.CancelFunc
	a, b   Image
	opts   DiffOptions

	mu      sync.Mutex // guards out and hashErr, which the hashers write too
	out     []Change
	hashErr error

	jobs chan hashJobDiff
	wg   sync.WaitGroup
}

// hashJobDiff is work for the hashers: the sha256 of each state (set in place), and, with compare, the
// path whose change is listed only if the two contents differ.
type hashJobDiff struct {
	a, b    *FileState // b may be nil
	va, vb  *overlay.View
	compare string
}

// startHashers starts the pool that hashes files while the walk goes on, so that only changes are kept,
// not every candidate.
func (d *differ) startHashers() {
	workers := d.opts.Workers
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	for range workers {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			buf := make([]byte, chunkSize)
			h := sha256.New()
			for j := range d.jobs {
				if d.ctx.Err() != nil {
					continue
				}
				err := hashState(d.ctx, j.va, j.a, h, buf)
				if err == nil && j.b != nil {
					err = hashState(d.ctx, j.vb, j.b, h, buf)
				}
				d.mu.Lock()
				switch {
				case err != nil:
					if d.hashErr == nil {
						d.hashErr = err
					}
					d.cancel()
				case j.compare != "" && j.a.SHA256 != j.b.SHA256:
					d.out = append(d.out, Change{Path: j.compare, Kind: Changed, Old: j.a, New: j.b})
				}
				d.mu.Unlock()
			}
		}()
	}
}

// hash queues a hashing job.
func (d *differ) hash(j hashJobDiff) error {
	select {
	case d.jobs <- j:
		return nil
	case <-d.ctx.Done():
		return d.ctx.Err()
	}
}

// add lists a change.
func (d *differ) add(c Change) {
	d.mu.Lock()
	d.out = append(d.out, c)
	d.mu.Unlock()
}

// state reads the state of node n of image im.
func (d *differ) state(im Image, n overlay.Node) (*FileState, error) {
	a, err := im.View.Attr(n)
	if err != nil {
		return nil, err
	}
	st := &FileState{
		Type: a.Type.String(), Mode: fmt.Sprintf("%04o", a.Mode), UID: a.UID, GID: a.GID, Size: a.Size,
		Mtime: time.Unix(a.MtimeSec, int64(a.MtimeNsec)).UTC().Format(time.RFC3339Nano),
		mode:  a.Mode, typ: a.Type, node: a.Node, mtimeSec: a.MtimeSec, mtimeNs: a.MtimeNsec,
	}
	if a.Type == index.TypeDir {
		st.Size = 0
	}
	if a.Layer >= 0 && a.Layer < len(im.DiffIDs) {
		st.Layer, st.LayerID = a.Layer+1, im.DiffIDs[a.Layer].String()
	}
	switch a.Type {
	case index.TypeSymlink:
		if st.Link, err = im.View.LinkTarget(n); err != nil {
			return nil, err
		}
	case index.TypeChar, index.TypeBlock:
		st.Device = fmt.Sprintf("%d:%d", a.Devmajor, a.Devminor)
	}
	if st.xattrs, err = im.View.Xattrs(n); err != nil {
		return nil, err
	}
	return st, nil
}

// member returns the (diff ID, entry) that node n of im shows, and whether it is a layer's entry.
func member(im Image, n overlay.Node) (digest.Digest, uint32, bool) {
	l := int(uint64(n)>>32) - 1
	if n == overlay.Root || l < 0 || l >= len(im.DiffIDs) || uint64(n)&(1<<63) != 0 {
		return "", 0, false
	}
	return im.DiffIDs[l], uint32(n), true
}

// sameMember reports whether node na of A and nb of B are the same entry of the same layer bytes.
func (d *differ) sameMember(na, nb overlay.Node) bool {
	da, ia, oka := member(d.a, na)
	db, ib, okb := member(d.b, nb)
	return oka && okb && da == db && ia == ib
}

// dir compares directory p ("" for the root, else "/a/b") of A (node na) and B (node nb).
func (d *differ) dir(p string, na, nb overlay.Node) error {
	if err := d.ctx.Err(); err != nil {
		return err
	}
	da, err := d.a.View.ReadDir(na)
	if err != nil {
		return fmt.Errorf("image A: %s/: %w", p, err)
	}
	db, err := d.b.View.ReadDir(nb)
	if err != nil {
		return fmt.Errorf("image B: %s/: %w", p, err)
	}
	i, j := 0, 0
	for i < da.Len() || j < db.Len() {
		var ea, eb overlay.DirEntry
		cmp := 0
		switch {
		case i >= da.Len():
			cmp = 1
		case j >= db.Len():
			cmp = -1
		default:
			ea, eb = da.Entry(i), db.Entry(j)
			cmp = strings.Compare(ea.Name, eb.Name)
		}
		switch cmp {
		case -1:
			ea = da.Entry(i)
			i++
			if err := d.deleted(p+"/"+ea.Name, ea.Node); err != nil {
				return err
			}
		case 1:
			eb = db.Entry(j)
			j++
			if err := d.added(p+"/"+eb.Name, eb.Node); err != nil {
				return err
			}
		default:
			i++
			j++
			if err := d.both(p+"/"+ea.Name, ea.Node, eb.Node); err != nil {
				return err
			}
		}
	}
	return nil
}

func (d *differ) deleted(p string, n overlay.Node) error {
	st, err := d.state(d.a, n)
	if err != nil {
		return fmt.Errorf("image A: %s: %w", p, err)
	}
	d.add(Change{Path: p, Kind: Deleted, Old: st})
	if d.opts.Hash && st.typ == index.TypeRegular {
		return d.hash(hashJobDiff{a: st, va: d.a.View})
	}
	return nil
}

// added lists p and, for a directory, everything below it.
func (d *differ) added(p string, n overlay.Node) error {
	if err := d.ctx.Err(); err != nil {
		return err
	}
	st, err := d.state(d.b, n)
	if err != nil {
		return fmt.Errorf("image B: %s: %w", p, err)
	}
	d.add(Change{Path: p, Kind: Added, New: st})
	if d.opts.Hash && st.typ == index.TypeRegular {
		if err := d.hash(hashJobDiff{a: st, va: d.b.View}); err != nil {
			return err
		}
	}
	if st.typ == index.TypeDir {
		return d.addedBelow(p, n)
	}
	return nil
}

func (d *differ) addedBelow(p string, n overlay.Node) error {
	dir, err := d.b.View.ReadDir(n)
	if err != nil {
		return fmt.Errorf("image B: %s/: %w", p, err)
	}
	for k := range dir.Len() {
		e := dir.Entry(k)
		if err := d.added(p+"/"+e.Name, e.Node); err != nil {
			return err
		}
	}
	return nil
}

// both compares path p, present in A (node na) and B (node nb).
func (d *differ) both(p string, na, nb overlay.Node) error {
	if d.sameMember(na, nb) {
		// The same entry of the same layer bytes: nothing of it differs. A directory's children may
		// still come from other layers.
		a, err := d.a.View.Attr(na)
		if err != nil {
			return fmt.Errorf("image A: %s: %w", p, err)
		}
		if a.Type == index.TypeDir {
			return d.dir(p, na, nb)
		}
		return nil
	}
	sa, err := d.state(d.a, na)
	if err != nil {
		return fmt.Errorf("image A: %s: %w", p, err)
	}
	sb, err := d.state(d.b, nb)
	if err != nil {
		return fmt.Errorf("image B: %s: %w", p, err)
	}
	fields := compareStates(sa, sb)
	// Two files of one size: their contents decide, or tell whether the content changed too.
	sameSize := sa.typ == index.TypeRegular && sb.typ == index.TypeRegular && sa.Size == sb.Size
	var err2 error
	switch {
	case len(fields) == 0 && sameSize:
		err2 = d.hash(hashJobDiff{a: sa, va: d.a.View, b: sb, vb: d.b.View, compare: p})
	case len(fields) > 0:
		d.add(Change{Path: p, Kind: Changed, Old: sa, New: sb, Fields: fields})
		j := hashJobDiff{}
		if sameSize || (d.opts.Hash && sa.typ == index.TypeRegular) {
			j.a, j.va = sa, d.a.View
		}
		if sameSize || (d.opts.Hash && sb.typ == index.TypeRegular) {
			if j.a == nil {
				j.a, j.va = sb, d.b.View
			} else {
				j.b, j.vb = sb, d.b.View
			}
		}
		if j.a != nil {
			err2 = d.hash(j)
		}
	}
	if err2 != nil {
		return err2
	}
	switch {
	case sa.typ == index.TypeDir && sb.typ == index.TypeDir:
		return d.dir(p, na, nb)
	case sb.typ == index.TypeDir:
		return d.addedBelow(p, nb)
	}
	return nil
}

// compareStates names what differs between two states of a path (content aside).
func compareStates(a, b *FileState) []string {
	var f []string
	if a.typ != b.typ {
		f = append(f, "type")
	}
	if a.mode != b.mode {
		f = append(f, "mode")
	}
	if a.UID != b.UID || a.GID != b.GID {
		f = append(f, "owner")
	}
	if a.typ != index.TypeDir || b.typ != index.TypeDir {
		if a.Size != b.Size {
			f = append(f, "size")
		}
		if a.mtimeSec != b.mtimeSec || a.mtimeNs != b.mtimeNs {
			f = append(f, "mtime")
		}
	}
	if a.Link != b.Link {
		f = append(f, "link")
	}
	if a.Device != b.Device {
		f = append(f, "device")
	}
	if !slices.EqualFunc(a.xattrs, b.xattrs, func(x, y index.Xattr) bool { return x.Name == y.Name && bytes.Equal(x.Value, y.Value) }) {
		f = append(f, "xattrs")
	}
	return f
}

// flagsOf returns the flags of change c.
func flagsOf(c *Change) []string {
	if c.Kind == Deleted || c.New == nil || c.New.typ != index.TypeRegular {
		return nil
	}
	var f []string
	if c.New.mode&0o4000 != 0 {
		f = append(f, "setuid")
	}
	if c.New.mode&0o2000 != 0 {
		f = append(f, "setgid")
	}
	if c.New.mode&0o111 != 0 {
		f = append(f, "executable")
	}
	return f
}

// hashState sets st.SHA256 from the data of its file in v.
func hashState(ctx context.Context, v *overlay.View, st *FileState, h hash.Hash, buf []byte) error {
	f, err := v.Open(st.node)
	if err != nil {
		return err
	}
	defer f.Close()
	h.Reset()
	if st.Size >= bigFile {
		err = hashParallel(ctx, f, st.Size, nil, h)
	} else {
		err = hashSerial(ctx, f, st.Size, buf, nil, h)
	}
	if err != nil {
		p, _ := v.Path(st.node)
		return fmt.Errorf("/%s: %w", p, err)
	}
	st.SHA256 = hex.EncodeToString(h.Sum(nil))
	return nil
}

// addParents adds the Changed line of every directory above a change that is not listed itself (docker
// diff lists the parents of a change): such a directory is in both images, since a change below an
// added one is added and nothing below a deleted one is listed.
func (d *differ) addParents(out []Change) ([]Change, error) {
	listed := make(map[string]bool, len(out))
	for _, c := range out {
		listed[c.Path] = true
	}
	n := len(out)
	for i := range n {
		p := out[i].Path
		for {
			k := strings.LastIndexByte(p, '/')
			if k <= 0 {
				break
			}
			p = p[:k]
			if listed[p] {
				break
			}
			listed[p] = true
			sa, err := d.lookupState(d.a, p)
			if err != nil {
				return nil, fmt.Errorf("image A: %s: %w", p, err)
			}
			sb, err := d.lookupState(d.b, p)
			if err != nil {
				return nil, fmt.Errorf("image B: %s: %w", p, err)
			}
			out = append(out, Change{Path: p, Kind: Changed, Old: sa, New: sb, Fields: []string{"contents"}})
		}
	}
	return out, nil
}

// lookupState returns the state of absolute path p in im.
func (d *differ) lookupState(im Image, p string) (*FileState, error) {
	n := overlay.Root
	for _, c := range strings.Split(p[1:], "/") {
		a, err := im.View.Lookup(n, c)
		if err != nil {
			return nil, err
		}
		n = a.Node
	}
	if n == overlay.Root {
		return nil, errors.New("the root")
	}
	return d.state(im, n)
}

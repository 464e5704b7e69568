package layerdiff

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/internal/ovlfmt"
	"github.com/imgfs/imgfs/overlay"
)

// Kind says how a path differs between the lower view and the view with an upper directory on top.
type Kind byte

// Kinds of change, with the letters `docker diff` prints.
const (
	// Added means the path does not exist in the lower view.
	Added Kind = 'A'
	// Changed means the upper directory holds a new state of a path that exists in the lower view.
	Changed Kind = 'C'
	// Deleted means a path of the lower view is gone.
	Deleted Kind = 'D'
)

// String returns the kind's letter.
func (k Kind) String() string { return string(rune(k)) }

// Change is one line of a change set.
type Change struct {
	// Path is the absolute path of the changed entry, like "/etc/motd"; the root is never listed.
	Path string
	Kind Kind
}

// String formats the change as `docker diff` prints it: "C /etc".
func (c Change) String() string { return string(rune(c.Kind)) + " " + c.Path }

// Changes returns the change set of upperDir, an upper directory in the kernel overlayfs format, over
// lower (nil: an empty lower view), as `docker diff` lists it: one line per path, sorted by path.
//
// Every entry of the upper directory is a change: Changed when its path exists in the lower view (of
// any type), else Added; everything below an added directory is added too. A whiteout of a path that
// exists in the lower view is Deleted, and the deleted subtree is not listed; a whiteout of a path
// absent below is not a change. An opaque upper directory hides the lower directory's children: those
// not present in the upper directory are Deleted, and so are those of an upper directory below an opaque
// one. The parent of an added or deleted path is always in the upper directory, so it shows as Changed
// (or Added, when it is new itself). The root is never listed, and it is always merged with the lower
// view, as overlayfs does, even if the upper directory itself carries an opaque xattr.
//
// Entries are read by package ovlfmt's rules, which the writable view follows too: whiteouts are
// character devices 0/0, or, in a directory marked for them (overlay.opaque="x" or overlay.whiteouts),
// empty regular files with the xattr overlay.whiteout (elsewhere such a file is a plain empty file, as
// the kernel reads it); opaque directories carry overlay.opaque="y"; both xattr namespaces count.
// As in a writable View, names starting with ".wh." (AUFS metadata, temporaries a writable View left
// behind, hand-made names) are skipped. A socket is listed as Write commits it: a layer cannot hold
// one, so it is a whiteout, Deleted when it replaces a lower path, else not a change (the mount shows it).
// The upper directory is read without following any symlink in it. Directories renamed by overlayfs's
// redirect_dir feature (ovlfmt.ErrRedirect) and files whose data its metacopy feature left below
// (ovlfmt.ErrMetacopy) are refused, with errors wrapping errors.ErrUnsupported.
func Changes(ctx context.Context, lower *overlay.View, upperDir string) ([]Change, error) {
	root, err := openChangeRoot(upperDir)
	if err != nil {
		return nil, fmt.Errorf("diff of %s: %w", upperDir, err)
	}
	defer root.close()
	c := &changeLister{v: lower}
	if err := c.dir(ctx, root, "", rootLower(lower)); err != nil {
		return nil, fmt.Errorf("diff of %s: %w", upperDir, err)
	}
	slices.SortFunc(c.out, func(a, b Change) int { return strings.Compare(a.Path, b.Path) })
	return c.out, nil
}

// changeEntry is one entry of an upper directory, as lstat shows it.
type changeEntry struct {
	name string
	// typ is the entry's type; 0 for a socket (or any type a layer cannot hold).
	typ index.Type
	// whiteout: a character device 0/0 or an empty file with an overlay.whiteout xattr.
	whiteout bool
	// opaque: a directory with overlay.opaque="y".
	opaque bool
	// xwh: a directory marked as holding xattr whiteouts.
	xwh       bool
	mode      uint32 // permission, setuid, setgid and sticky bits
	uid, gid  uint32
	size      int64
	mtimeSec  int64
	mtimeNsec uint32
	devmajor  uint32
	devminor  uint32
	dev, ino  uint64
	nlink     uint64
}

// changeLower is where an upper directory stands in the lower view.
type changeLower struct {
	node overlay.Node // the lower view's directory at this path, when dir is set
	dir  bool         // the lower view has a directory at this path
	// merged: the lower directory's children show through, as overlayfs merges them: no opaque upper
	// directory at this path or above it.
	merged bool
}

// rootLower is the lower position of the upper directory's root. Overlayfs always merges the root
// with the lower layers, whatever xattrs the upper directory itself carries.
func rootLower(v *overlay.View) changeLower {
	if v == nil {
		return changeLower{}
	}
	return changeLower{node: overlay.Root, dir: true, merged: true}
}

// lookup returns the lower view's attributes of name in the directory, if it has one of that name.
func (l changeLower) lookup(v *overlay.View, name string) (overlay.Attr, bool, error) {
	if !l.dir {
		return overlay.Attr{}, false, nil
	}
	a, err := v.Lookup(l.node, name)
	switch {
	case err == nil:
		return a, true, nil
	case errors.Is(err, overlay.ErrNotExist):
		return overlay.Attr{}, false, nil
	}
	return overlay.Attr{}, false, fmt.Errorf("looking up %q in the lower view: %w", name, err)
}

// sub returns the lower position of upper directory e, whose lower attributes are a (when found).
func (l changeLower) sub(e *changeEntry, a overlay.Attr, found bool) changeLower {
	if !found || a.Type != index.TypeDir {
		return changeLower{}
	}
	return changeLower{node: a.Node, dir: true, merged: l.merged && !e.opaque}
}

// changeLister collects a change set.
type changeLister struct {
	v   *overlay.View
	out []Change
}

// dir lists the changes in upper directory d, at path p ("" for the root, else "/a/b").
func (c *changeLister) dir(ctx context.Context, d *changeDir, p string, low changeLower) error {
	ents, err := d.list(ctx)
	if err != nil {
		return err
	}
	for i := range ents {
		if err := ctx.Err(); err != nil {
			return err
		}
		e := &ents[i]
		if strings.HasPrefix(e.name, ovlfmt.WhiteoutPrefix) {
			continue // AUFS metadata, a temporary, or a hand-made ".wh." name: the view never shows one
		}
		cp := p + "/" + e.name
		a, found, err := low.lookup(c.v, e.name)
		if err != nil {
			return fmt.Errorf("%s: %w", cp, err)
		}
		if e.whiteout || e.typ == 0 { // a socket: the commit keeps only the whiteout of what it replaces
			if found {
				c.out = append(c.out, Change{cp, Deleted})
			}
			continue
		}
		kind := Added
		if found {
			kind = Changed
		}
		c.out = append(c.out, Change{cp, kind})
		if e.typ != index.TypeDir {
			continue
		}
		sd, err := d.sub(e)
		if err != nil {
			return err
		}
		err = c.dir(ctx, sd, cp, low.sub(e, a, found))
		sd.close()
		if err != nil {
			return err
		}
	}
	if !low.dir || low.merged {
		return nil
	}
	// The lower directory is hidden: whatever it has that the upper directory does not name is gone.
	ld, err := c.v.ReadDir(low.node)
	if err != nil {
		return fmt.Errorf("%s: reading the lower directory: %w", p+"/", err)
	}
	for i := range ld.Len() {
		name := ld.Entry(i).Name
		if _, ok := slices.BinarySearchFunc(ents, name, func(e changeEntry, n string) int {
			return strings.Compare(e.name, n)
		}); !ok {
			c.out = append(c.out, Change{p + "/" + name, Deleted})
		}
	}
	return nil
}

// changeMetaName reports whether name, in an upper directory, is AUFS metadata or a temporary that a
// writable View left behind (".wh..wh.*"): never a change.
func changeMetaName(name string) bool { return strings.HasPrefix(name, ovlfmt.MetaPrefix) }

// changeXattrIgnored reports whether extended attribute name is a marker (ovlfmt.Hidden), which a layer
// never carries.
func changeXattrIgnored(name string) bool { return ovlfmt.Hidden(name) }

package layertree

import (
	"strconv"
	"strings"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/overlay"
)

// The provenance attributes: answered by getxattr, never listed.
const (
	XattrLayer  = "user.imgfs.layer"
	XattrOffset = "user.imgfs.offset"
	XattrPath   = "user.imgfs.path"
	// XattrTree is answered by the merged root: the reserved directory's name.
	XattrTree = "user.imgfs.tree"
)

// The provenance attributes are also answered as trusted.imgfs.*: Linux allows no user.* attribute on
// symbolic links, devices, FIFOs and sockets (getxattr gives ENODATA without asking the file system),
// so root reads theirs under trusted.
const (
	userPrefix    = "user.imgfs."
	trustedPrefix = "trusted.imgfs."
)

// canonical returns the user.imgfs.* name of provenance attribute name (itself, or its trusted.imgfs.*
// alias); ok is false for any other name.
func canonical(name string) (string, bool) {
	if rest, ok := strings.CutPrefix(name, trustedPrefix); ok {
		name = userPrefix + rest
	}
	switch name {
	case XattrLayer, XattrOffset, XattrPath, XattrTree:
		return name, true
	}
	return "", false
}

// reservedXattr reports whether name is a provenance attribute, which the merged view answers itself.
func reservedXattr(name string) bool {
	_, ok := canonical(name)
	return ok
}

// withoutReserved returns xs without the reserved names (an image member's own attribute of such a
// name shows only under the layer tree).
func withoutReserved(xs []index.Xattr) []index.Xattr {
	keep := 0
	for _, x := range xs {
		if !reservedXattr(x.Name) {
			keep++
		}
	}
	if keep == len(xs) {
		return xs
	}
	out := make([]index.Xattr, 0, keep)
	for _, x := range xs {
		if !reservedXattr(x.Name) {
			out = append(out, x)
		}
	}
	return out
}

// UnlistedXattr answers getxattr of the provenance attributes (see the package documentation); ok is
// false for any other name, and for a provenance name that does not apply to the node.
func (t *View) UnlistedXattr(n overlay.Node, name string) ([]byte, bool, error) {
	name, ok := canonical(name)
	if !ok {
		return nil, false, nil
	}
	if k, L, id, ok := decode(n); ok {
		if !t.tree {
			return nil, false, overlay.ErrInvalid
		}
		if k == kindMeta || name == XattrTree {
			return nil, false, nil
		}
		l, e, err := t.entry(k, L, id)
		if err != nil {
			return nil, false, err
		}
		return t.provenance(name, L, l, id, e, false)
	}
	if name == XattrTree {
		if n == overlay.Root && t.tree {
			return []byte(t.name), true, nil
		}
		return nil, false, nil
	}
	o, err := t.v.Origin(n)
	if err != nil {
		return nil, false, err
	}
	if o.Layer == len(t.layers) {
		if name == XattrLayer {
			return []byte("upper"), true, nil
		}
		return nil, false, nil
	}
	if o.Layer < 0 {
		return nil, false, nil
	}
	l := t.layers[o.Layer]
	return t.provenance(name, o.Layer, l, o.Entry, l.Entry(o.Entry), o.Implied)
}

// provenance returns attribute name of entry id (metadata e) of layer L.
func (t *View) provenance(name string, L int, l overlay.Layer, id index.ID, e index.Entry, implied bool) ([]byte, bool, error) {
	implied = implied || e.Flags&index.FlagImplied != 0
	switch name {
	case XattrLayer:
		v := strconv.Itoa(L+1) + " " + t.img.Layers[L].Digest
		if implied {
			v += " implied"
		}
		return []byte(v), true, nil
	case XattrOffset:
		if implied || e.Type != index.TypeRegular {
			return nil, false, nil
		}
		return []byte(strconv.FormatInt(e.Offset, 10)), true, nil
	case XattrPath:
		return []byte(l.Path(id)), true, nil
	}
	return nil, false, nil
}

// HasXattrs reports that nodes may have extended attributes: every node answers the provenance
// attributes, so package fs must keep asking (it would otherwise tell the kernel that this mount has
// none, and getxattr of user.imgfs.layer would never reach the view).
func (t *View) HasXattrs() bool { return true }

// HasXattr reports whether any node may have the attribute called name: a provenance attribute, or one
// that a layer has (the merged view's, the layer trees' and the hidden files' come from the layers).
func (t *View) HasXattr(name string) bool {
	return reservedXattr(name) || t.v.HasXattr(name)
}

package layertree

import (
	"fmt"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/overlay"
)

// The writable side: every change is the overlay view's, except that nothing under the reserved
// directory changes (ErrReadOnly), the reserved name of the root cannot be made, removed or renamed
// (ErrReservedName), and the provenance attributes cannot be set or removed (ErrReservedName).

// readOnly refuses a change that touches a node of the tree.
func (t *View) readOnly(op string, nodes ...overlay.Node) error {
	for _, n := range nodes {
		if isTree(n) {
			return fmt.Errorf("%s: under /%s: %w", op, t.name, overlay.ErrReadOnly)
		}
	}
	return nil
}

// reservedName refuses a change of the reserved name in the root.
func (t *View) reservedName(op string, parent overlay.Node, name string) error {
	if t.tree && parent == overlay.Root && name == t.name {
		return fmt.Errorf("%s /%s: the layer tree's name: %w", op, name, overlay.ErrReservedName)
	}
	return nil
}

func (t *View) checkNew(op string, parent overlay.Node, name string) error {
	if err := t.readOnly(op, parent); err != nil {
		return err
	}
	return t.reservedName(op, parent, name)
}

// Writable reports whether the view accepts changes (the overlay view's do).
func (t *View) Writable() bool { return t.v.Writable() }

// Create makes a regular file in the merged view.
func (t *View) Create(parent overlay.Node, name string, mode uint32, c overlay.Caller) (overlay.Attr, overlay.WFile, error) {
	if err := t.checkNew("create", parent, name); err != nil {
		return overlay.Attr{}, nil, err
	}
	return t.v.Create(parent, name, mode, c)
}

// Mkdir makes a directory in the merged view.
func (t *View) Mkdir(parent overlay.Node, name string, mode uint32, c overlay.Caller) (overlay.Attr, error) {
	if err := t.checkNew("mkdir", parent, name); err != nil {
		return overlay.Attr{}, err
	}
	return t.v.Mkdir(parent, name, mode, c)
}

// Mknod makes a FIFO or a device in the merged view.
func (t *View) Mknod(parent overlay.Node, name string, typ index.Type, mode uint32, major, minor uint32, c overlay.Caller) (overlay.Attr, error) {
	if err := t.checkNew("mknod", parent, name); err != nil {
		return overlay.Attr{}, err
	}
	return t.v.Mknod(parent, name, typ, mode, major, minor, c)
}

// Symlink makes a symbolic link in the merged view.
func (t *View) Symlink(parent overlay.Node, name, target string, c overlay.Caller) (overlay.Attr, error) {
	if err := t.checkNew("symlink", parent, name); err != nil {
		return overlay.Attr{}, err
	}
	return t.v.Symlink(parent, name, target, c)
}

// Link gives a node of the merged view a new name; a node of the tree cannot be linked into it
// (ErrCrossDevice: cp can copy it).
func (t *View) Link(target, newParent overlay.Node, newName string) (overlay.Attr, error) {
	if err := t.checkNew("link", newParent, newName); err != nil {
		return overlay.Attr{}, err
	}
	if isTree(target) {
		return overlay.Attr{}, fmt.Errorf("link: from /%s: %w", t.name, overlay.ErrCrossDevice)
	}
	return t.v.Link(target, newParent, newName)
}

// Unlink removes a name of the merged view.
func (t *View) Unlink(parent overlay.Node, name string) error {
	if err := t.checkNew("unlink", parent, name); err != nil {
		return err
	}
	return t.v.Unlink(parent, name)
}

// Rmdir removes a directory of the merged view.
func (t *View) Rmdir(parent overlay.Node, name string) error {
	if err := t.checkNew("rmdir", parent, name); err != nil {
		return err
	}
	return t.v.Rmdir(parent, name)
}

// Rename moves a name within the merged view.
func (t *View) Rename(oldParent overlay.Node, oldName string, newParent overlay.Node, newName string, flags overlay.RenameFlags) error {
	if err := t.checkNew("rename", oldParent, oldName); err != nil {
		return err
	}
	if err := t.checkNew("rename", newParent, newName); err != nil {
		return err
	}
	return t.v.Rename(oldParent, oldName, newParent, newName, flags)
}

// SetAttr changes the attributes of a node of the merged view.
func (t *View) SetAttr(n overlay.Node, in overlay.SetAttrIn) (overlay.Attr, error) {
	if err := t.readOnly("setattr", n); err != nil {
		return overlay.Attr{}, err
	}
	return t.v.SetAttr(n, in)
}

// SetXattr sets an extended attribute of a node of the merged view, other than a provenance one.
func (t *View) SetXattr(n overlay.Node, name string, value []byte, flags int) error {
	if err := t.readOnly("setxattr", n); err != nil {
		return err
	}
	if reservedXattr(name) {
		return fmt.Errorf("setxattr %s: answered by imgfs: %w", name, overlay.ErrReservedName)
	}
	return t.v.SetXattr(n, name, value, flags)
}

// RemoveXattr removes an extended attribute of a node of the merged view, other than a provenance one.
func (t *View) RemoveXattr(n overlay.Node, name string) error {
	if err := t.readOnly("removexattr", n); err != nil {
		return err
	}
	if reservedXattr(name) {
		return fmt.Errorf("removexattr %s: answered by imgfs: %w", name, overlay.ErrReservedName)
	}
	return t.v.RemoveXattr(n, name)
}

// OpenFile opens a regular file of the merged view for writing or truncation.
func (t *View) OpenFile(n overlay.Node, write, trunc bool) (overlay.WFile, error) {
	if (write || trunc) && isTree(n) {
		return nil, t.readOnly("open", n)
	}
	if isTree(n) {
		return nil, fmt.Errorf("open: under /%s: not a file of the merged view: %w", t.name, overlay.ErrReadOnly)
	}
	return t.v.OpenFile(n, write, trunc)
}

// Sync flushes the merged view's changes.
func (t *View) Sync() error { return t.v.Sync() }

// OnDirCopyUp passes fn on to the overlay view.
func (t *View) OnDirCopyUp(fn func(n overlay.Node)) { t.v.OnDirCopyUp(fn) }

// Package overlay shows ordered image layers as one tree, the way a container sees them: OCI whiteouts
// and opaque directories applied, hardlinks resolved to one node, implied directories filled in.
//
// It must not import go-fuse, return syscall.Errno of its own, or parse manifests. The layers are member
// tables (the Layer interface, satisfied by *index.Layer). Given an upper directory (OpenUpper,
// Options.Upper) the view is writable; see "Writable views" below.
//
// # Semantics
//
// The view equals extracting the layers bottom-up into an empty directory, for each layer first deleting
// what its whiteouts name, then writing its entries (the tests compare it with such an extractor):
//
//   - ".wh.NAME" in a layer hides NAME and its subtree in the layers below; NAME in the same layer stays.
//     ".wh..wh..opq" in a directory hides every lower child of that directory, wherever it appears in the
//     layer. A character device 0/0 is a whiteout of its own name and a directory with the xattr
//     trusted.overlay.opaque="y" is opaque (overlayfs style). Other ".wh..wh.*" names are AUFS metadata:
//     hidden, but hard links into them (".wh..wh.plnk/...") resolve. No ".wh.*" name is ever listed or
//     found by Lookup. In a layer whose root holds stargz.index.json, that file and the
//     .prefetch.landmark and .no.prefetch.landmark files at its root are treated as absent.
//   - A directory in a higher layer shadows a lower non-directory, as overlay2 shows it (also an
//     implied directory, even one that holds only whiteouts); a non-directory shadows a lower directory
//     and all below it.
//   - A directory's attributes come from the topmost entry of its merged stack that is not implied; the
//     stack ends at a non-directory, a whiteout or an opaque directory (whose own entry still counts), as
//     if the directory had been deleted and recreated there. When every entry is implied the attributes
//     are 0755, 0:0, mtime 0 and Attr.Layer is -1. The root is the same, over the layers' roots.
//   - A hard link in layer L names the entry its target path names in the view of layers 0..L at that
//     point: Entry.Link when the target is in L, else the path in the view of layers 0..L-1. Its node is
//     the target's node, so every name of a file shows one inode, with its attributes (the link member's
//     own metadata is ignored) and Nlink = its visible names. A later replacement of the target path does
//     not change the link. A link whose target is missing, a directory, a whiteout or on a cycle is
//     unresolvable: its name is removed (it still hides lower entries of that name, as an extractor that
//     removed the old path and then failed to link would leave it) and New logs a warning.
//
// # Cost
//
// Nodes carry no state: a node is the (layer, entry) that owns it, and a directory's merged stack is
// recomputed from its entry's parents and kept in a bounded cache (4,096 stacks). Lookup costs
// O(layers × log(children)); ReadDir is a k-way merge of the layers' sorted child ranges, O(n log k),
// into a 16-byte-per-entry snapshot. New walks only the layers' hard links. Directories report Nlink 1
// (as btrfs does; find copes), because counting subdirectories would need a listing.
//
// # Writable views
//
// With an upper directory the view is the union of the layers and that directory, with the semantics
// of a writable overlayfs mount and the kernel's on-disk format, so that the same directory works as
// upperdir of "mount -t overlay" over the extracted layers, and a remount over the same layers with the
// same directory shows the same view (the directory is the only state):
//
//   - An entry of the upper directory hides the layers' entry of that name; directories merge unless
//     the upper one is opaque (trusted.overlay.opaque="y", or user.overlay.opaque="y"). A whiteout (a
//     character device 0/0, or an empty file with overlay.whiteout in a directory marked with
//     overlay.opaque="x" or overlay.whiteouts) hides the name. Markers are never listed or found, and
//     overlayfs's and imgfs's xattrs never show.
//   - Changing a lower entry copies it up first, with its metadata: the parents (as directories with
//     the layers' attributes), then the entry, data first into a temporary file of the work directory
//     (beside the upper directory, on its mount, like overlayfs's workdir: see UpperOptions.Dir),
//     fsynced, then renamed into place; the parent's times are kept. A file with several names in the
//     layers is copied once and linked under all of them. Removing a lower name leaves a whiteout; a
//     directory made where the layers show one is opaque. Moving a directory copies up everything the
//     layers show below it, so that it no longer depends on its old path (kernel overlayfs would
//     return EXDEV without redirect_dir); it is opaque where it lands on a directory of the layers.
//   - Nodes keep their IDs across copy-up and moves; entries made in the upper directory get IDs with
//     the top bit set. The view remembers a record ({parent, name}, inode) only for nodes that have an
//     entry in the upper directory; lower nodes stay stateless. After a remount, an upper entry takes
//     the node of the layers' entry at its path when that is the same kind of thing with one name.
//   - Every path in the upper directory is opened with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|
//     RESOLVE_NO_XDEV) and entries are changed with the *at calls and their no-follow flags: no symlink,
//     of the image or planted in the directory, makes the view touch anything outside it.
//   - Changes are serialized (a big copy-up delays other changes, not reads); Freeze stops them all,
//     writes through open files included.
package overlay

// Package layertree stacks an examiner's view on a merged overlay.View: the merged tree as it is, and
// beside it, under a reserved directory at the root (DefaultName, ".imgfs", unless the image has that
// name), every layer alone, the files that whiteouts and opaque directories hid, and the image's
// manifest, config and history; and on every node of the merged view the provenance attributes that
// getxattr answers and listxattr does not list (user.imgfs.layer, user.imgfs.offset, user.imgfs.path).
//
// It must not import go-fuse, parse manifests (it gets their bytes) or write anything: it is pure logic
// over the view's public API (Attr, Lookup, ReadDir, Origin, ...) and the layers' member tables
// (overlay.Layer), served by package fs like any other view.
//
// # The reserved directory
//
//	NAME/layers/<N>-<digest>/...  layer N (1 = bottom) alone, as its tar holds it: whiteout markers
//	                              (".wh.x", ".wh..wh..opq", character devices 0/0) shown as the members
//	                              they are, modes, owners, times, xattrs (trusted.overlay.* included),
//	                              hard links as one inode, sparse files with their holes (what
//	                              the index keeps: the last of duplicate paths, no member it drops)
//	NAME/hidden/<N>-<digest>/...  the members of layer N that a whiteout or opaque directory of a higher
//	                              layer deleted, at their paths in layer N, with their content; only
//	                              layers that lost something are listed
//	NAME/image/manifest.json      the manifest as stored (for a legacy docker-save archive, the one imgfs
//	                              synthesizes, whose digest is the image's manifest digest)
//	NAME/image/config.json        the config blob as stored
//	NAME/image/history.json       the config's "history" array, its bytes verbatim ("[]" when absent)
//
// <digest> is the first 12 hex digits of the layer's blob digest. A member counts as hidden when some
// higher layer M has a whiteout ".wh.x" (or a character device 0/0) naming its path or a parent of it, or
// marks one of its parent directories opaque (".wh..wh..opq", trusted.overlay.opaque=y): what a
// container runtime deletes when it applies layer M. Every version of the path in the layers below M
// is listed, also one an intermediate layer had already replaced. Whiteout markers themselves are not
// files and are not listed as hidden. A file replaced by a later layer without a whiteout is not
// hidden (layers/ shows both versions).
//
// The merged view does not list NAME (readdir of the root omits it); a lookup of NAME finds it. When
// the image's root has an entry called DefaultName, the image's entry wins in the merged view and the
// tree takes the first free name of ".imgfs-1", ".imgfs-2", ...; Name says which, and the root answers
// getxattr user.imgfs.tree with it. Options.Name picks a name explicitly (then a clash is an error).
//
// Everything under NAME is read-only, on a writable mount too: a change below it fails with
// overlay.ErrReadOnly (EROFS), a change of NAME itself in the root with overlay.ErrReservedName (EPERM),
// and a hard link from the tree into the merged view with overlay.ErrCrossDevice (EXDEV). Export and
// commit read the overlay view, never this one, so they never include the tree.
//
// A hard link of a layer shows its target's inode (Nlink counts the names in that layer). A hard link
// whose target is not in its own layer (docker never writes one) shows the topmost member of a lower
// layer at the target path, a regular file; when there is none, it is absent, as tar -x would fail to
// make it.
//
// # Provenance
//
// Every node of the merged view answers getxattr of:
//
//	user.imgfs.layer   "<N> <blob digest>" of the layer whose member it shows (1 = bottom; a hard link
//	                   shows its target's layer), "upper" for an entry of a writable mount's upper
//	                   directory, "<N> <digest> implied" for a directory no layer has a member for
//	user.imgfs.offset  for a regular file, the decimal offset of the member's data in the layer's
//	                   uncompressed tar stream (where its bytes start, after its headers); absent for
//	                   other types (they have no data) and for upper entries
//	user.imgfs.path    the member's path in that layer ("" for the root)
//
// Linux allows no user.* attribute on symbolic links, devices, FIFOs and sockets (getxattr answers
// ENODATA without asking the file system), so every node also answers the same values as
// trusted.imgfs.layer, trusted.imgfs.offset and trusted.imgfs.path, which root can read on any type.
//
// listxattr does not list them, so cp -a, tar --xattrs and rsync -X copy nothing new. They are reserved
// names in the merged view: an image member's own xattr of one of these names is not shown there (not
// listed, not returned), but stays visible under NAME/layers, and setting or removing one on a writable
// mount fails with EPERM. Nodes under NAME/layers and NAME/hidden answer the same names for the member
// they show, unless the member has its own attribute of that name, which wins.
//
// # Nodes
//
// Nodes carry no state. The view's own nodes are overlay's; the tree's have bit 62 set (overlay never
// hands such out): 1<<62 | kind<<48 | layer<<32 | entry, where kind says the directory of the tree
// (layers, hidden, or the fixed directories and files). The hidden sets are computed once, at the first
// use of NAME/hidden: one pass over the names of every layer but the bottom one and two bits per entry.
package layertree

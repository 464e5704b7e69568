// Package fs serves an overlay view through FUSE: node IDs, attributes, cache timeouts, kernel page
// caching of immutable data, and the mapping of errors to errno values.
//
// It must not hold union logic or touch tar.
//
// It implements go-fuse's raw protocol interface (fuse.RawFileSystem) rather than go-fuse's fs package,
// which keeps an Inode object for every node the kernel has looked up: with a million entries walked
// that alone exceeds the memory bound. Here FUSE node IDs are the view's nodes, which are stable and
// computed, so no state is kept per node (FORGET is a no-op); the only state is one small record per
// open file or directory.
//
// Choices visible to users:
//   - The mount is ro, nodev and nosuid, with default_permissions: the kernel checks modes and owners.
//   - Entries, attributes and negative lookups are cached by the kernel for Options.EntryTimeout and
//     AttrTimeout (an hour by default); file data stays in the page cache across opens
//     (FOPEN_KEEP_CACHE), directory listings too (FOPEN_CACHE_DIR), symlink targets too.
//   - Directories report st_size 4096 and 8 blocks, not their number of entries, so that stat never
//     lists a directory. A symbolic link reports the length of its target.
//   - atime and ctime equal mtime; st_blksize is 4096; st_ino is the node.
//   - In listings, ".." has d_ino unknown (0xffffffff) except at the root: the view has no parent link.
//   - go-fuse answers the name ".go-fuse-epoll-hack" in the root itself.
package fs

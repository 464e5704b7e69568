// Package fs serves an overlay view through FUSE: node IDs, attributes, cache timeouts and kernel page
// caching, the changes of a writable view and the pause a live commit asks for, and the mapping of
// errors to errno values.
//
// It must not hold union logic or touch tar.
//
// It builds on Linux only, and says so through its import of overlay, whose files are all *_linux.go
// (DESIGN.md states the rule once): its own files carry no suffix, and nothing is stubbed for other
// systems.
//
// It implements go-fuse's raw protocol interface (fuse.RawFileSystem) rather than go-fuse's fs package,
// which keeps an Inode object for every node the kernel has looked up: with a million entries walked
// that alone exceeds the memory bound. Here FUSE node IDs are the view's nodes, which are stable and
// computed, so no state is kept per node (FORGET is a no-op); the only state is one small record per
// open file or directory.
//
// Choices visible to users:
//   - A read-only view is mounted ro; a view with the WritableView ability whose Writable reports true
//     is mounted rw. Both are nodev and nosuid, with default_permissions: the kernel checks modes and
//     owners, and clears setuid/setgid bits on chown and writes itself.
//   - Entries, attributes and negative lookups are cached by the kernel for Options.EntryTimeout and
//     AttrTimeout (a year by default for a read-only view, which never changes; an hour for a writable
//     one). Writable views are cached too: every change goes through the mount,
//     each reply carries the changed node's attributes, and the kernel itself invalidates what a change
//     touches besides (the parents' attributes and listings, link counts, ctime). The view keeps a node
//     naming the same file across copy-up and renames, so nothing the kernel holds goes stale; a second
//     mount of the same view with cold caches shows the same tree (tested).
//   - A read-only view is opened without OPEN and OPENDIR where the kernel allows it (they are answered
//     ENOSYS once, FUSE_NO_OPEN_SUPPORT and FUSE_NO_OPENDIR_SUPPORT), and FLUSH is answered ENOSYS on
//     every view (there is never anything to write back): a warm walk, a warm read of every file and a
//     warm ls -l send no request at all. A read-only view without a single extended attribute answers
//     GETXATTR with ENOSYS too, so that the kernel answers getxattr(2) itself: EOPNOTSUPP for every
//     name, as on a file system without extended attributes, where a view with some answers ENODATA.
//     A read-only view where no node has security.selinux answers EOPNOTSUPP for that name (the mount
//     has no SELinux labels): ls -l, which asks it of every entry, stops at the first.
//   - File data: a read-only view's files stay in the page cache across opens (FOPEN_KEEP_CACHE); reads
//     use the file's ReadAt (a pread of the archive for uncompressed layers), never go-fuse's splice
//     result, which can answer short before the end of the file. A writable view's files are not kept
//     across opens, and each read asks the file for its current size. Writes go through to the view at once (no writeback cache), so the page cache never
//     holds data the view lacks. Directory listings stay cached in both cases (FOPEN_CACHE_DIR); the
//     kernel drops a listing when its directory changes. Symlink targets are cached.
//   - New entries belong to the caller of the request (its uid and gid), with the umask applied; in a
//     setgid directory they take its group, and new directories its setgid bit. Names starting with
//     ".wh." are refused with EPERM (the layers use them as whiteouts).
//   - Unsupported on writable views: fallocate (EOPNOTSUPP; posix_fallocate(3) then writes zeros),
//     O_TMPFILE (EOPNOTSUPP), RENAME_WHITEOUT (EINVAL).
//     copy_file_range and SEEK_DATA/SEEK_HOLE are left to the kernel's generic versions. File locks are
//     the kernel's, local to the machine.
//   - Directories report st_size 4096 and 8 blocks, not their number of entries, so that stat never
//     lists a directory. A symbolic link reports the length of its target.
//   - Entries of the layers show their mtime as atime and ctime (a tar keeps neither); entries of the
//     upper directory show its files' own times. st_blksize is 4096; st_ino is the node.
//   - In listings, ".." has d_ino unknown (0xffffffff) except at the root: the view has no parent link.
//   - go-fuse answers the name ".go-fuse-epoll-hack" in the root itself.
package fs

package fs

import (
	"strings"
	"sync"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/overlay"
)

// dirHandle is an open directory. Its snapshot is taken at the first READDIR, not at OPENDIR: when
// the kernel has the listing in its cache it opens the directory but never reads it.
//
// Directory offsets are positions in the snapshot: 0 is ".", 1 is "..", and 2+i is the snapshot's
// entry i; the offset of an entry in a reply is the position after it. Positions never move, so a
// listing resumes in constant time wherever it stopped.
type dirHandle[D Dir] struct {
	node overlay.Node
	attr overlay.Attr // when opened
	once sync.Once
	dir  D
	err  error
}

func (h *dirHandle[D]) snapshot(view View[D]) (D, error) {
	h.once.Do(func() { h.dir, h.err = view.ReadDir(h.node) })
	return h.dir, h.err
}

// OpenDir answers OPENDIR. The reply lets the kernel keep the listing in its page cache
// (FOPEN_CACHE_DIR with FOPEN_KEEP_CACHE). Where the kernel can open directories without OPENDIR
// (noOpenDir), a read-only view answers ENOSYS instead: the kernel opens every directory itself from
// then on, with the same caching, and READDIR comes without a handle (see readDir).
func (fs *fileSystem[D]) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	if fs.noOpenDir {
		return fuse.ENOSYS
	}
	a, err := fs.view.Attr(overlay.Node(in.NodeId))
	if err == nil && a.Type != index.TypeDir {
		err = overlay.ErrNotDir
	}
	if err != nil {
		return fs.status("opendir", in.NodeId, err)
	}
	out.Fh = fs.dirs.add(&dirHandle[D]{node: overlay.Node(in.NodeId), attr: a})
	if fs.cacheDir {
		out.OpenFlags = fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE
	}
	return fuse.OK
}

// ReleaseDir answers RELEASEDIR by dropping the snapshot.
func (fs *fileSystem[D]) ReleaseDir(in *fuse.ReleaseIn) {
	fs.dirs.remove(in.Fh)
}

// FsyncDir answers FSYNCDIR. A read-only view has nothing to write back; a writable one syncs its whole
// upper directory (the view has no narrower sync), so that entries made or renamed in the directory are
// durable, as fsync(2) on a directory promises.
func (fs *fileSystem[D]) FsyncDir(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	if !fs.writable() {
		return fuse.OK
	}
	if err := fs.wview.Sync(); err != nil {
		return fs.status("fsyncdir", in.NodeId, err)
	}
	return fuse.OK
}

// ReadDir answers READDIR from the snapshot, starting at the requested offset.
func (fs *fileSystem[D]) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return fs.readDir(in, out, false)
}

// ReadDirPlus answers READDIRPLUS: READDIR plus, for every entry, the reply a LOOKUP of it would get,
// so that listing a directory with attributes costs one request per buffer instead of one per entry.
// "." and ".." carry no entry reply (node ID 0), as the kernel expects.
func (fs *fileSystem[D]) ReadDirPlus(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return fs.readDir(in, out, true)
}

// readDir answers READDIR and READDIRPLUS from the snapshot of the handle, or, for a request without
// one where the kernel opens directories itself (noOpenDir), from a snapshot of the node taken for it.
func (fs *fileSystem[D]) readDir(in *fuse.ReadIn, out *fuse.DirEntryList, plus bool) fuse.Status {
	var dir D
	var err error
	dnode := overlay.Node(in.NodeId)
	byNode := false
	if h, ok := fs.dirs.get(in.Fh); ok {
		dnode = h.node
		dir, err = h.snapshot(fs.view)
	} else if in.Fh == 0 && fs.noOpenDir {
		byNode = true
		dir, err = fs.snapshot.get(dnode, fs.view.ReadDir)
	} else {
		return fuse.EBADF
	}
	if err != nil {
		return fs.status("readdir", uint64(dnode), err)
	}
	end := uint64(dir.Len()) + 2
	if byNode && in.Offset >= end {
		fs.snapshot.drop(dnode) // the kernel has read it all
	}
	for pos := in.Offset; pos < end; pos++ {
		de := fuse.DirEntry{Off: pos + 1, Mode: fuse.S_IFDIR}
		var node overlay.Node
		switch pos {
		case 0:
			de.Name, de.Ino = ".", uint64(dnode)
		case 1:
			// The parent is unknown here except for the root, which is its own parent; the
			// kernel answers ".." lookups itself, so only d_ino is at stake and it says unknown.
			de.Name = ".."
			if dnode == overlay.Root {
				de.Ino = uint64(overlay.Root)
			}
		default:
			e := dir.Entry(int(pos - 2))
			if dnode == overlay.Root && e.Name == pollHackName {
				continue
			}
			if !validName(e.Name) {
				// The kernel fails the whole listing with EIO on such a name: leave it out.
				fs.log.Debug("readdir: skipping invalid name", "dir", uint64(dnode), "name", e.Name)
				continue
			}
			node = e.Node
			de.Name, de.Ino = e.Name, uint64(e.Node)
			de.Mode, _ = typeMode(e.Type) // an unknown type lists as DT_UNKNOWN
		}
		if !plus {
			if !out.AddDirEntry(de) {
				break
			}
			continue
		}
		eo := out.AddDirLookupEntry(de)
		if eo == nil {
			break
		}
		if node == 0 {
			continue
		}
		a, err := fs.view.Attr(node)
		if err == nil {
			err = fs.fillEntry(eo, a)
		}
		if err != nil {
			// The name is still listed; without an entry reply the kernel looks it up when it is used.
			*eo = fuse.EntryOut{}
			fs.status("readdirplus", uint64(node), err)
			continue
		}
		out.FixMode(eo.Attr.Mode)
	}
	return fuse.OK
}

// pollHackName is the root name that go-fuse's server answers itself, before the file system sees the
// request: LOOKUP, and every other request naming it in the root, get an empty fake file (node 2^64-1)
// that go-fuse opens once at mount time to make the kernel send its POLL request early. go-fuse has no
// option to turn that off, so an image's own root file of that name cannot be served by name; it is
// left out of the root's listings too, so that the name shows go-fuse's fake consistently instead of
// the image's file after a READDIRPLUS and the fake after the kernel forgets it. Export and commit
// still carry the file: they do not go through the mount.
const pollHackName = ".go-fuse-epoll-hack"

// validName reports whether name can be a directory entry: the kernel rejects listings with empty
// names or names holding '/' or NUL, and "." and ".." are ours to add.
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\x00")
}

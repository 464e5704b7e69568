package fs

import (
	"fmt"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/overlay"
)

const (
	// blockSize is the preferred I/O size reported in st_blksize and the block size of StatFs.
	blockSize = 4096
	// dirSize is the st_size of every directory, as on ext4 for a directory of one block. The number
	// of entries would cost a directory listing per stat.
	dirSize = 4096
	// generation is the generation of every node: node IDs are never reused while mounted.
	generation = 1
)

// typeMode returns the S_IF* bits of a node type, and false for a type that has none. A hard link is
// its target: a regular file.
func typeMode(t index.Type) (uint32, bool) {
	if t == index.TypeHardlink {
		t = index.TypeRegular
	}
	m := t.Mode()
	return m, m != 0
}

// fillAttr converts the view's attributes to the kernel's. Symbolic links whose size the view leaves 0
// get the length of their target, as lstat(2) promises.
func (fs *fileSystem[D]) fillAttr(out *fuse.Attr, a overlay.Attr) error {
	typ, ok := typeMode(a.Type)
	if !ok {
		return fmt.Errorf("node %d has type %v", a.Node, a.Type)
	}
	// The kernel reads times back as signed: times before 1970 survive. The layers keep no atime or
	// ctime: they show the mtime; upper entries have their own.
	mtime, nsec := uint64(a.MtimeSec), min(a.MtimeNsec, 999_999_999)
	atime, ansec, ctime, cnsec := mtime, nsec, mtime, nsec
	if a.Times {
		atime, ansec = uint64(a.AtimeSec), min(a.AtimeNsec, 999_999_999)
		ctime, cnsec = uint64(a.CtimeSec), min(a.CtimeNsec, 999_999_999)
	}
	*out = fuse.Attr{
		Ino:       uint64(a.Node),
		Size:      uint64(max(a.Size, 0)),
		Blocks:    uint64(max(a.Blocks, 0)),
		Atime:     atime,
		Mtime:     mtime,
		Ctime:     ctime,
		Atimensec: ansec,
		Mtimensec: nsec,
		Ctimensec: cnsec,
		Mode:      typ | a.Mode&07777,
		Nlink:     a.Nlink,
		Owner:     fuse.Owner{Uid: a.UID, Gid: a.GID},
		Blksize:   blockSize,
	}
	if out.Nlink == 0 && !fs.writable() {
		// Only a node of a writable view, open but with no name left, has no link.
		out.Nlink = 1
	}
	switch a.Type {
	case index.TypeDir:
		out.Size = dirSize
		out.Blocks = dirSize / 512
	case index.TypeSymlink:
		if a.Size == 0 {
			target, err := fs.view.Readlink(a.Node)
			if err != nil {
				return fmt.Errorf("reading link %d: %w", a.Node, err)
			}
			out.Size = uint64(len(target))
		}
	case index.TypeChar, index.TypeBlock:
		// The kernel decodes rdev with new_decode_dev, which is the low 32 bits of Mkdev's encoding.
		out.Rdev = uint32(unix.Mkdev(a.Devmajor, a.Devminor))
	}
	return nil
}

// fillEntry fills a LOOKUP or READDIRPLUS reply for a.
func (fs *fileSystem[D]) fillEntry(out *fuse.EntryOut, a overlay.Attr) error {
	if a.Node == 0 {
		return fmt.Errorf("view returned node 0 for a %v", a.Type)
	}
	if err := fs.fillAttr(&out.Attr, a); err != nil {
		return err
	}
	out.NodeId = uint64(a.Node)
	out.Generation = generation
	out.SetEntryTimeout(fs.entryTimeout)
	out.SetAttrTimeout(fs.attrTimeout)
	return nil
}

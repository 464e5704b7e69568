package fs

import (
	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/overlay"
)

// View is the read-only tree that a file system serves: the method set of *overlay.View. D is the type
// of its directory snapshots (*overlay.Dir); Go infers it from the view, so callers write
// fs.Mount(dir, view, opts).
//
// Every method must be safe for concurrent use. Nodes are stable: the same node always has the same
// attributes, and a node returned once stays valid for the life of the view, because the kernel may ask
// about it at any time without looking it up again.
type View[D Dir] interface {
	// Attr returns the attributes of node n.
	Attr(n overlay.Node) (overlay.Attr, error)
	// Lookup returns the attributes of the entry called name in directory parent. It fails with an
	// error matching overlay.ErrNotExist when there is none.
	Lookup(parent overlay.Node, name string) (overlay.Attr, error)
	// ReadDir returns a snapshot of the entries of directory n, sorted by name, without "." and "..".
	ReadDir(n overlay.Node) (D, error)
	// Readlink returns the target of symbolic link n.
	Readlink(n overlay.Node) (string, error)
	// Xattrs returns the extended attributes of node n.
	Xattrs(n overlay.Node) ([]index.Xattr, error)
	// Open returns the data of regular file n.
	Open(n overlay.Node) (overlay.File, error)
}

// Dir is a snapshot of a directory's entries. Entry is called with 0 <= i < Len, possibly from several
// goroutines at once.
type Dir interface {
	Len() int
	Entry(i int) overlay.DirEntry
}

// UsageReporter is an optional ability of a View: a view that has it tells StatFs how many bytes of
// regular-file data and how many nodes it holds. Without it StatFs reports zero blocks and files.
type UsageReporter interface {
	Usage() (bytes, files int64)
}

// The overlay package's view is what Mount serves in imgfs.
var _ View[*overlay.Dir] = (*overlay.View)(nil)

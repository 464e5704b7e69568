package overlay

import (
	"os"

	"github.com/imgfs/imgfs/index"
)

// Layer is one read-only image layer as the union consumes it: a member table plus access to member data.
// *index.Layer satisfies it; tests use in-memory tables.
//
// A Layer must keep the contract of an index table: the root is ID 0 (its own parent) and is a directory;
// the children of every directory are contiguous and sorted bytewise by name; names are normalised (no
// "./", no leading "/", no "..", no empty components); parents that had no member of their own exist as
// directories with index.FlagImplied; a path occurs at most once; whiteout names (".wh.X", ".wh..wh..opq",
// other ".wh..wh.*") are stored verbatim as ordinary entries; a hard link has Type index.TypeHardlink,
// LinkName the normalised target path and Entry.Link the target's ID when the target is in the same
// layer, else index.NoID. Hardlinks lists every TypeHardlink entry. Every method must be safe for
// concurrent use and must not retain or modify the caller's buffers.
type Layer interface {
	// Len returns the number of entries, the root included.
	Len() int
	// Entry returns the metadata of entry id.
	Entry(id index.ID) index.Entry
	// Name returns the base name of entry id ("" for the root).
	Name(id index.ID) string
	// LinkName returns a symlink's target verbatim or a hard link's normalised target path.
	LinkName(id index.ID) string
	// Path returns the full path of entry id ("a/b/c"; "" for the root).
	Path(id index.ID) string
	// Lookup returns the child called name of directory dir.
	Lookup(dir index.ID, name string) (index.ID, bool)
	// Children returns the contiguous, sorted range of the children of directory dir.
	Children(dir index.ID) (first index.ID, n int)
	// Xattrs returns the extended attributes of entry id; callers must not modify the result.
	Xattrs(id index.ID) []index.Xattr
	// Hardlinks returns every entry of Type index.TypeHardlink.
	Hardlinks() []index.ID
	// ReadAt reads the data of regular file id, bounded to the member.
	ReadAt(id index.ID, p []byte, off int64) (int, error)
	// FileRange returns the plain file range holding the data of regular file id, when there is one.
	FileRange(id index.ID) (f *os.File, off int64, ok bool)
}

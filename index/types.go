package index

import "github.com/imgfs/imgfs/compression"

// ID numbers an entry in a Table. The root directory is always ID 0 (its parent is itself). Entries are
// numbered so that the children of every directory are contiguous and sorted bytewise by name.
type ID uint32

// NoID marks an absent entry.
const NoID ID = ^ID(0)

// Type is the kind of a member.
type Type uint8

// Member types.
const (
	TypeRegular Type = iota + 1
	TypeDir
	TypeSymlink
	TypeHardlink // a hard link; LinkName is the target path, Entry.Link the target when it is in this layer
	TypeChar
	TypeBlock
	TypeFIFO
)

func (t Type) String() string {
	switch t {
	case TypeRegular:
		return "file"
	case TypeDir:
		return "dir"
	case TypeSymlink:
		return "symlink"
	case TypeHardlink:
		return "hardlink"
	case TypeChar:
		return "char"
	case TypeBlock:
		return "block"
	case TypeFIFO:
		return "fifo"
	}
	return "unknown"
}

// Flags qualify an entry.
type Flags uint16

// Entry flags.
const (
	// FlagImplied marks a directory that has no member of its own: a member below it implied it.
	FlagImplied Flags = 1 << iota
	// FlagSparse marks a regular file stored sparse; its data is read through the sparse map.
	FlagSparse
	// FlagXattrs marks an entry that carries extended attributes.
	FlagXattrs
)

// Entry is one member's metadata, copied out of the table.
type Entry struct {
	Parent    ID
	Type      Type
	Flags     Flags
	Mode      uint32 // permission bits plus setuid, setgid and sticky (07777)
	UID, GID  uint32
	Size      int64 // logical size of a regular file (sparse files: the expanded size); 0 otherwise
	MtimeSec  int64
	MtimeNsec uint32
	Offset    int64 // offset of the member's data in the uncompressed layer stream
	Devmajor  uint32
	Devminor  uint32
	Link      ID // TypeHardlink: the target entry when it is in this layer, else NoID
}

// Xattr is one extended attribute.
type Xattr struct {
	Name  string
	Value []byte
}

// SparseRegion is one data region of a sparse file: Length bytes at logical offset Offset are stored at
// Physical, relative to the member's data offset. Everything outside the regions reads as zero.
type SparseRegion struct {
	Offset, Length, Physical int64
}

// Blob is a byte range of a source (see compression.Blob): layers are opened from one.
type Blob = compression.Blob

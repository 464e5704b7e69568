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
	// TypeSocket is a UNIX socket. No layer holds one (a tar cannot); only a writable view's upper
	// directory can.
	TypeSocket
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
	case TypeSocket:
		return "socket"
	}
	return "unknown"
}

// The file-type bits of a mode (st_mode, a tar header's mode, a FUSE request's mode), as POSIX numbers
// them; they are the same on every Unix.
const (
	modeTypeMask = 0o170000 // S_IFMT
	modeFIFO     = 0o010000 // S_IFIFO
	modeChar     = 0o020000 // S_IFCHR
	modeDir      = 0o040000 // S_IFDIR
	modeBlock    = 0o060000 // S_IFBLK
	modeRegular  = 0o100000 // S_IFREG
	modeSymlink  = 0o120000 // S_IFLNK
	modeSocket   = 0o140000 // S_IFSOCK
)

// TypeOfMode returns the type of a file whose mode (st_mode) is m: the one mapping of the S_IF* bits to
// a Type. It returns 0 for bits that name no type.
func TypeOfMode(m uint32) Type {
	switch m & modeTypeMask {
	case modeRegular:
		return TypeRegular
	case modeDir:
		return TypeDir
	case modeSymlink:
		return TypeSymlink
	case modeChar:
		return TypeChar
	case modeBlock:
		return TypeBlock
	case modeFIFO:
		return TypeFIFO
	case modeSocket:
		return TypeSocket
	}
	return 0
}

// Mode returns the S_IF* bits of a file of type t, the inverse of TypeOfMode; 0 for TypeHardlink (a
// link has the type of its target) and for unknown types.
func (t Type) Mode() uint32 {
	switch t {
	case TypeRegular:
		return modeRegular
	case TypeDir:
		return modeDir
	case TypeSymlink:
		return modeSymlink
	case TypeChar:
		return modeChar
	case TypeBlock:
		return modeBlock
	case TypeFIFO:
		return modeFIFO
	case TypeSocket:
		return modeSocket
	}
	return 0
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
